from dataclasses import replace

import numpy as np
import pytest

from undense.compiler.frontend import import_onnx
from undense.compiler.passes.fold import LAYER_OVERHEAD_CYCLES, assign_rows, fold, predict_cycles
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.resources import layer_cost, total
from undense.compiler.targets import target
from undense.compiler.verify import verify
from undense.errors import UndenseError
from undense.runtime.synthetic import mlp


def encoded(widths=(32, 256, 256, 16), density=0.3):
    graph = fuse(import_onnx(mlp(list(widths), ["Relu"] * (len(widths) - 1), density=density)))
    return sparse_encode(quantize(graph, np.random.default_rng(0).normal(size=(100, widths[0]))))


def test_rows_are_balanced_over_elements():
    load = np.random.default_rng(1).integers(1, 40, size=300)
    owner = assign_rows(load, 7)
    totals = np.bincount(owner, weights=load, minlength=7)
    assert set(owner.tolist()) == set(range(7))
    assert totals.max() - totals.min() <= load.max()
    assert totals.max() <= load.sum() / 7 + load.max()


def test_cycles_follow_the_busiest_element_and_the_streams():
    node = encoded().nodes[1]
    load = np.maximum(node.weight.row_nnz, 1)
    assert predict_cycles(node, 1) == load.sum() + LAYER_OVERHEAD_CYCLES
    assert predict_cycles(node, 256) == 256 + LAYER_OVERHEAD_CYCLES  # bound by the 256-value streams


def test_balanced_fold_spends_the_budget_on_the_slowest_layer():
    small = replace(target("ecp5-85k"), dsp=16)  # about 6 go to the three requantizers
    folded = fold(encoded(), small)
    verify(folded, "fold")
    pes = [n.fold.pe for n in folded.nodes]
    assert total([layer_cost(folded, n, "ecp5") for n in folded.nodes])["dsp"] <= 16 and pes[1] == max(pes)
    cycles = [n.fold.cycles for n in folded.nodes]
    unfolded = [predict_cycles(n, 1) for n in folded.nodes]
    assert max(cycles) < max(unfolded) / 4


def test_fold_for_a_rate_reaches_it_with_the_fewest_elements():
    ecp5 = target("ecp5-85k")
    folded = fold(encoded(), ecp5, images_per_second=200_000)
    budget = ecp5.clock_mhz * 1e6 / 200_000
    for node in folded.nodes:
        assert node.fold.cycles <= budget
        assert node.fold.pe == 1 or predict_cycles(node, node.fold.pe - 1) > budget


def test_an_unreachable_rate_names_the_layer():
    with pytest.raises(UndenseError, match="layer 'layer0' cannot reach.*at most 91,255 images/s"):
        fold(encoded(), target("ice40-up5k"), images_per_second=1e6)


def test_a_rate_needing_too_many_multipliers_is_refused():
    with pytest.raises(UndenseError, match="DSP multipliers \\(ice40-up5k has 8\\).*60000 images/s needs"):
        fold(encoded(), target("ice40-up5k"), images_per_second=60_000)


def test_weights_too_big_for_the_device_are_refused():
    # 131,072 weights of 15 bits: eight SPRAMs' worth
    with pytest.raises(UndenseError, match="SPRAMs \\(ice40-up5k has 4\\).*'layer0'.*even with one processing"):
        fold(encoded((2048, 64, 16), density=1.0), target("ice40-up5k"))
