"""sparse_encode: keep only the nonzero weight codes after quantization, each with its input index (a
convolution's matrix is sparse from the start)."""
from dataclasses import replace

from undense.compiler.ir import QDense, QGraph, SparseRows


def sparse_encode(graph: QGraph) -> QGraph:
    return graph.with_nodes(
        replace(n, weight=SparseRows.from_dense(n.weight))
        if isinstance(n, QDense) and not isinstance(n.weight, SparseRows) else n
        for n in graph.nodes)
