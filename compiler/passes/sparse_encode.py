"""sparse_encode: keep only the nonzero weight codes after quantization, each with its input index."""
from dataclasses import replace

from undense.compiler.ir import QDense, QGraph, SparseRows


def sparse_encode(graph: QGraph) -> QGraph:
    return graph.with_nodes(
        replace(n, weight=SparseRows.from_dense(n.dense_codes())) if isinstance(n, QDense) else n
        for n in graph.nodes)
