"""balance: the neurons of hidden tensors reordered so that the PEs of a grid share the work; the model computes
the same, the ends and the tensors of an Add keep their order, and the busiest PE gets less."""
from pathlib import Path

import numpy as np
import onnx

from undense.compiler import activity, golden
from undense.compiler.frontend import import_onnx
from undense.compiler.passes.balance import arrivals, balance, balanced_order, movable, orders
from undense.compiler.passes.edges import edges
from undense.compiler.passes.fold import fold
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.targets import target
from undense.runtime.synthetic import mlp, residual_block

MODELS = Path(__file__).parents[2] / "models"


def encoded(model, features: int):
    samples = np.random.default_rng(0).normal(size=(100, features))
    return edges(sparse_encode(quantize(fuse(import_onnx(model)), samples))), samples


def test_an_order_gives_each_group_its_positions_and_evens_both_loads():
    rows, columns = np.array([9.0, 8.0, 1.0, 0.0]), np.zeros(4)
    order = balanced_order(rows, columns, 2)
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert [rows[order[group::2]].sum() for group in range(2)] == [9.0, 9.0]  # in this order: 10 and 8
    # the heavy columns go apart too, where the rows leave the choice
    order = balanced_order(np.ones(4), np.array([5.0, 5.0, 0.0, 0.0]), 2)
    assert {int(order[0]), int(order[1])} == {0, 1}
    odd = balanced_order(np.arange(7.0), np.arange(7.0)[::-1], 3)  # groups of 3, 2 and 2 positions
    assert sorted(odd.tolist()) == list(range(7))


def test_the_reordered_graph_computes_the_same():
    graph, samples = encoded(mlp([12, 40, 30, 8], ["Relu", "Relu", None], density=0.3), 12)
    values = golden.run_codes(graph, golden.quantize_input(graph, samples))
    lanes = {tensor: 3 for tensor in graph.sizes}
    balanced, reordered = balance(graph, lanes, arrivals(graph, values), values)
    order = orders(graph, lanes, arrivals(graph, values))
    hidden = [node.output for node in graph.nodes[:-1]]
    assert sorted(order) == sorted(hidden)
    assert any(not np.array_equal(order[t], np.arange(len(order[t]))) for t in hidden)
    after = golden.run_codes(balanced, golden.quantize_input(balanced, samples))
    assert np.array_equal(after[graph.output], values[graph.output])
    for tensor in hidden:
        assert np.array_equal(after[tensor], values[tensor][:, order[tensor]])
        assert np.array_equal(reordered[tensor], after[tensor])


def test_the_tensors_of_an_add_keep_their_order():
    graph, _ = encoded(residual_block(16), 16)
    assert movable(graph) == []


def test_the_busiest_pe_gets_less():
    """The bundled model on a grid of 8 x 9 x 3: balanced, its slowest layer and fc2 take fewer cycles than in
    the order it was trained in (measured: 41.2 against 42.4 for the slowest)."""
    calibration = np.load(MODELS / "digits" / "calib_latents.npy")
    graph = edges(sparse_encode(quantize(fuse(import_onnx(onnx.load(MODELS / "digits" / "generator.onnx"))),
                                         calibration)))
    groups = {"fc1": 8, "fc2": 9, "fc3": 3}
    folded = fold(graph, target("ecp5-85k"), samples=calibration, groups=groups)
    values = golden.run_codes(graph, activity.input_codes(graph, calibration))
    lanes = {graph.input: 1, **{node.output: groups[node.name] for node in graph.nodes}}
    present = activity.presence(graph, values, lanes)
    as_trained = [activity.layer_cycles(graph, node, present, values, lanes).mean() for node in graph.nodes]
    balanced = [node.fold.cycles for node in folded.nodes]
    assert max(balanced) < max(as_trained)
    assert balanced[1] < as_trained[1]
