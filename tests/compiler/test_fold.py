from dataclasses import replace

import numpy as np
import pytest

from undense.compiler import activity, golden
from undense.compiler.frontend import import_onnx
from undense.compiler.passes.edges import edges
from undense.compiler.passes.fold import fold
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.resources import layer_cost, total
from undense.compiler.targets import target
from undense.compiler.verify import verify
from undense.errors import UndenseError
from undense.hw import dense_unit
from undense.runtime.synthetic import mlp, residual_block

SAMPLES = np.random.default_rng(0).normal(size=(100, 32))


def encoded(widths=(32, 256, 256, 16), density=0.3):
    graph = fuse(import_onnx(mlp(list(widths), ["Relu"] * (len(widths) - 1), density=density)))
    return edges(sparse_encode(quantize(graph, np.random.default_rng(0).normal(size=(100, widths[0])))))


def test_relu_edges_are_sparse_and_the_ends_dense():
    graph = encoded()
    assert not graph.edges[graph.input].sparse and not graph.edges[graph.output].sparse
    hidden = [node.output for node in graph.nodes[:-1]]
    assert all(graph.edges[t].sparse and graph.edges[t].offset == graph.quant[t].zero_point for t in hidden)


def test_cycles_follow_the_busiest_element_or_the_drain():
    graph = fold(encoded(), target("ecp5-85k"), samples=SAMPLES, groups={"layer0": 1, "layer1": 4, "layer2": 2})
    node = graph.nodes[1]
    assert (node.fold.lanes, node.fold.groups) == (1, 4)
    values = golden.run_codes(graph, golden.quantize_input(graph, SAMPLES))
    valued = values[node.input] != graph.edges[node.input].offset
    ends = ~valued[:, -1]  # the lane's last position always travels (it ends the image): where zero, one entry
    counts = dense_unit.column_counts(node.dense_codes(), 1, 4)
    work = (valued.astype(int) @ counts + ends[:, None]).max(axis=1)  # the busiest of the four PEs, image by image
    expected = np.maximum(work, 256 // 4 + dense_unit.DRAIN_OVERHEAD)
    assert node.fold.cycles == pytest.approx(expected.mean(), abs=0.01)
    assert node.fold.cycles_p99 == pytest.approx(np.percentile(expected, 99))


def test_balanced_fold_spends_the_budget_on_the_slowest_layer():
    small = replace(target("ecp5-85k"), dsp=24)
    unfolded = fold(encoded(), small, samples=SAMPLES, groups={})
    folded = fold(encoded(), small, samples=SAMPLES)
    verify(folded, "fold")
    assert total([layer_cost(folded, n, "ecp5") for n in folded.nodes])["dsp"] <= 24
    assert max(n.fold.cycles for n in folded.nodes) < max(n.fold.cycles for n in unfolded.nodes) / 3
    for node, following in zip(folded.nodes, folded.nodes[1:], strict=False):
        assert following.fold.lanes == node.fold.groups  # a layer's groups are the next one's lanes


def test_fold_for_a_rate_reaches_it():
    ecp5 = target("ecp5-85k")
    folded = fold(encoded(), ecp5, images_per_second=400_000, samples=SAMPLES)
    budget = ecp5.clock_mhz * 1e6 / 400_000
    assert all(node.fold.cycles <= budget for node in folded.nodes)
    fastest = fold(encoded(), ecp5, samples=SAMPLES)
    assert sum(n.fold.pe for n in folded.nodes) < sum(n.fold.pe for n in fastest.nodes)


def test_an_unreachable_rate_names_the_layer():
    with pytest.raises(UndenseError, match="layer 'layer.' cannot reach 1e\\+06 images/s at 24 MHz.*at most"):
        fold(encoded(), target("ice40-up5k"), images_per_second=1e6, samples=SAMPLES)


def test_weights_too_big_for_the_device_are_refused():
    # 131,072 weights of 15 bits: eight SPRAMs' worth
    with pytest.raises(UndenseError, match="SPRAMs \\(ice40-up5k has 4\\).*'layer0'.*even with one processing"):
        fold(encoded((2048, 64, 16), density=1.0), target("ice40-up5k"))


def test_the_inputs_of_an_add_keep_the_same_lanes():
    x = np.random.default_rng(4).normal(size=(100, 10)).astype(np.float32)
    graph = edges(sparse_encode(quantize(fuse(import_onnx(residual_block(10))), x)))
    folded = fold(graph, target("ecp5-85k"), samples=x)
    for node in folded.nodes:
        if not hasattr(node, "weight"):
            lanes = {folded.edges[t].lanes for t in (*node.inputs, node.output)}
            assert len(lanes) == 1


def test_predicted_events_follow_the_data():
    graph = fold(encoded(), target("ecp5-85k"), samples=SAMPLES)
    codes = golden.quantize_input(graph, SAMPLES[:10])
    counts = activity.predicted_events(graph, codes)
    values = golden.run_codes(graph, codes)
    hidden = graph.nodes[0].output
    nonzero = int((values[hidden] != graph.edges[hidden].offset).sum())
    assert nonzero < counts["layer1"]["stream_in"] <= nonzero + 10 * graph.edges[hidden].lanes
    assert counts["layer1"]["event_reads"] == counts["layer1"]["stream_in"] * graph.nodes[1].fold.groups
