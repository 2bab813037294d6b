"""The sparse matrix-vector-activation unit on Verilator, bit-exact against golden, under gaps and stalls."""
from dataclasses import replace

import numpy as np
import pytest

import undense
from undense.compiler import golden
from undense.compiler.ir import Fold
from undense.compiler.passes.fold import assign_rows, predict_cycles
from undense.hw.top import mvau_for
from undense.runtime.synthetic import mlp


def spread_over(node, pe: int):
    """The layer with its rows on exactly `pe` elements."""
    owner = assign_rows(np.maximum(node.weight.row_nnz, 1), pe)
    return replace(node, fold=Fold(pe, owner, predict_cycles(node, pe)))


@pytest.mark.parametrize("activation,bits,pe,seed", [
    ("Relu", 8, 1, 0),      # clamp, one element
    ("Sigmoid", 6, 3, 1),   # table, rows spread over three elements
    (None, 4, 7, 2),        # no activation, narrow codes, many elements with a few rows each
])
def test_one_layer_matches_golden(run_stream_bench, activation, bits, pe, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    graph = undense.compile(mlp([12, 20], [activation], density=0.25, seed=seed), calibration=x, bits=bits).graph
    node = spread_over(graph.nodes[0], pe)
    assert len(set(node.fold.pe_of_row.tolist())) == pe
    codes = golden.quantize_input(graph, x[:12])
    expected = golden.run_codes(graph, codes)[graph.output]
    run_stream_bench(mvau_for(graph, node), "layer", codes, expected, signed=graph.quant[graph.output].signed)
