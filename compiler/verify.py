"""Invariants of the IR, checked between passes in tests: which pass broke which rule."""
import numpy as np

from undense.compiler.ir import Dense, Graph, QDense, QGraph, SparseRows


class VerifyError(AssertionError):
    pass


def _check(condition: bool, pass_name: str, message: str) -> None:
    if not condition:
        raise VerifyError(f"after {pass_name}: {message}")


def verify(graph: Graph | QGraph, pass_name: str) -> None:
    defined = {graph.input}
    for node in graph.nodes:
        for tensor in node.inputs:
            _check(tensor in defined, pass_name, f"{node.name} reads '{tensor}' before it is computed")
        _check(node.output not in defined, pass_name, f"'{node.output}' is computed twice")
        defined.add(node.output)
        features = [graph.sizes[t] for t in node.inputs]
        if isinstance(node, Dense):
            if node.geometry is not None:
                geometry = node.geometry
                _check(node.weight.shape == geometry.kernel_shape, pass_name,
                       f"{node.name}: kernel {node.weight.shape} does not match its geometry")
                shape = (geometry.out_features, geometry.in_features)
            else:
                shape = node.weight.shape
            _check(shape == (graph.sizes[node.output], features[0]), pass_name,
                   f"{node.name}: weight {shape} does not match its tensors")
        elif isinstance(node, QDense):
            shape = (node.out_features, node.in_features)
            _check(shape == (graph.sizes[node.output], features[0]), pass_name,
                   f"{node.name}: weight {shape} does not match its tensors")
            codes = node.weight.values if isinstance(node.weight, SparseRows) else node.weight
            limit = 1 << (node.weight_bits - 1)
            _check(bool(np.all((-limit <= codes) & (codes < limit))), pass_name,
                   f"{node.name}: a weight code exceeds its bits")
            if isinstance(node.weight, SparseRows):
                _check(bool(np.all(node.weight.values != 0)), pass_name, f"{node.name}: a stored weight is zero")
            if node.table is not None:
                _check(len(node.table) == 1 << node.requant.bits, pass_name, f"{node.name}: table size")
            if node.fold is not None:
                _check(1 <= node.fold.groups <= shape[0] and 1 <= node.fold.lanes <= shape[1],
                       pass_name, f"{node.name}: a grid of {node.fold.lanes} x {node.fold.groups} PEs for a "
                       f"{shape[0]} x {shape[1]} layer")
        else:
            _check(features[0] == features[1] == graph.sizes[node.output], pass_name, f"{node.name}: sizes differ")
    _check(graph.output in defined, pass_name, "the graph output is never computed")
