"""edges: decide, tensor by tensor, whether zeros travel between units.

Where a unit's output can be zero (a ReLU or Clip clamp, a table with a zero entry, a quantized zero), the edge
is sparse: only nonzero values travel, as events whose value is the code less the zero point. Where it cannot
(Sigmoid into a range without its zero point, a raw accumulator), and at the model's input and output, it is
dense: every value travels, as its code. Lanes are the fold pass's call; this pass gives every edge one.
"""
import numpy as np

from undense.compiler.ir import Edge, QAdd, QDense, QGraph


def can_be_zero(graph: QGraph, node: QDense | QAdd) -> bool:
    """Whether the unit's output code can be its zero point."""
    zero = graph.quant[node.output].zero_point
    if isinstance(node, QAdd):
        return True
    low, high = node.clamp
    if node.table is None:
        return low <= zero <= high
    reachable = node.table[low - node.requant.qmin:high - node.requant.qmin + 1]
    return bool(np.any(reachable == zero))


def edges(graph: QGraph) -> QGraph:
    decided = {tensor: Edge(1, False, 0) for tensor in graph.sizes}
    for node in graph.nodes:
        raw = isinstance(node, QDense) and node.multiplier is None
        if node.output != graph.output and not raw and can_be_zero(graph, node):
            decided[node.output] = Edge(1, True, graph.quant[node.output].zero_point)
    return graph.replace_edges(decided)
