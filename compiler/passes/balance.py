"""balance: order the neurons of each hidden tensor so that the PEs of a grid share the work evenly.

A Dense layer's output row i belongs to group i % groups, and in the Dense layer it feeds, column i travels on
lane i % lanes (hw/dense_unit.py); a layer's cycles per image are its busiest PE's. The neurons of a tensor
that only Dense layers see are anonymous: ordering them differently (the producer's rows and the consumer's
columns together) changes no output. This pass deals each such tensor's neurons out to the producer's groups,
heaviest first, each where it adds least to the busier of two loads: the producer's PEs of that group (the
neuron's row) and the consumer's PEs of that lane (its column), each weight counted as often as its input
arrives as an event. The model's input and output keep their order, and so
does every tensor an Add sees (its inputs and its output share one order).

The fold (passes/fold.py) applies it to every grid it weighs, since the order depends on the groups.
"""
from dataclasses import replace

import numpy as np

from undense.compiler.ir import QDense, QGraph, SparseRows


def arrivals(graph: QGraph, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """How often each value of each tensor travels as an event over the images of `values` (golden's codes):
    its share of nonzero values on a sparse edge, always on a dense one."""
    found = {}
    for tensor, codes in values.items():
        edge = graph.edges.get(tensor)
        sparse = edge is not None and edge.sparse
        found[tensor] = (codes - edge.offset != 0).mean(axis=0) if sparse else np.ones(codes.shape[1])
    return found


def balanced_order(rows: np.ndarray, columns: np.ndarray, groups: int) -> np.ndarray:
    """Position -> neuron: the neurons dealt to `groups` groups (position p is group p % groups), heaviest
    first, each to the group with a position free where it raises the busier of the group's two loads least: a
    neuron's `rows` work in the PE of its group in the layer that makes it, its `columns` work in the PE of the
    lane it travels on in the layer it feeds (group g's neurons travel on lane g)."""
    count = len(rows)
    places = [list(range(group, count, groups)) for group in range(groups)]
    loads = np.zeros((groups, 2))
    order = np.empty(count, dtype=np.int64)
    for neuron in np.lexsort((-(rows + columns), -np.maximum(rows, columns))):
        added = loads + [rows[neuron], columns[neuron]]
        group = min((g for g in range(groups) if places[g]), key=lambda g: (added[g].max(), added[g].sum(), g))
        order[places[group].pop(0)] = neuron
        loads[group] = added[group]
    return order


def movable(graph: QGraph) -> list[str]:
    """The tensors whose neurons may be reordered: made by a Dense layer, seen only by Dense layers, neither
    the model's input nor its output, nor a feature map a convolution makes or reads (its kernel needs the map's
    order)."""
    plain = [node for node in graph.nodes if isinstance(node, QDense) and node.geometry is None]
    seen_by_others = {tensor for node in graph.nodes if node not in plain for tensor in node.inputs}
    return [node.output for node in plain if node.output not in seen_by_others and node.output != graph.output]


def orders(graph: QGraph, lanes: dict[str, int], arrival: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The order of every movable tensor whose producer has more than one group (its lanes). A neuron's work
    per PE: its row's nonzero weights over the producer's input lanes, and its column's in each consumer over
    that consumer's groups, each weighted by how often its input arrives."""
    found = {}
    reorderable = movable(graph)
    for node in graph.nodes:
        tensor = node.output
        if isinstance(node, QDense) and tensor in reorderable and lanes[tensor] > 1:
            rows = (node.dense_codes() != 0) @ arrival[node.input] / lanes[node.input]
            columns = sum((arrival[tensor] * (consumer.dense_codes() != 0).sum(axis=0) / lanes[consumer.output]
                           for consumer in graph.nodes if consumer.inputs == (tensor,)), np.zeros(len(rows)))
            found[tensor] = balanced_order(rows, columns, lanes[tensor])
    return found


def permuted(graph: QGraph, order: dict[str, np.ndarray]) -> QGraph:
    """The graph with each tensor of `order` reordered: its producer's rows, its consumers' columns."""
    nodes = []
    for node in graph.nodes:
        if isinstance(node, QDense) and (node.output in order or node.input in order):
            rows = order.get(node.output, slice(None))
            codes = node.dense_codes()[rows][:, order.get(node.input, slice(None))]
            weight = SparseRows.from_dense(codes) if isinstance(node.weight, SparseRows) else codes
            node = replace(node, weight=weight, bias=node.bias[rows],
                           multiplier=None if node.multiplier is None else node.multiplier[rows],
                           shift=None if node.shift is None else node.shift[rows])
        nodes.append(node)
    return graph.with_nodes(nodes)


def balance(graph: QGraph, lanes: dict[str, int], arrival: dict[str, np.ndarray],
            values: dict[str, np.ndarray]) -> tuple[QGraph, dict[str, np.ndarray]]:
    """The graph balanced for `lanes` (per tensor; a tensor's lanes are its producer's groups), and `values`
    (golden's codes per tensor) in the same order."""
    order = orders(graph, lanes, arrival)
    return permuted(graph, order), {tensor: codes[:, order[tensor]] if tensor in order else codes
                                    for tensor, codes in values.items()}
