"""The sparse matrix-vector-activation unit on Verilator, bit-exact against golden, under gaps and stalls."""
import numpy as np
import pytest

import undense
from undense.compiler import golden
from undense.hw.top import mvau_for
from undense.runtime.synthetic import mlp


@pytest.mark.parametrize("activation,bits,pe,seed", [
    ("Relu", 8, 1, 0),      # clamp, one element
    ("Sigmoid", 6, 3, 1),   # table, rows spread over three elements
    (None, 4, 5, 2),        # no activation, narrow codes, more elements than most rows need
])
def test_one_layer_matches_golden(run_stream_bench, activation, bits, pe, seed):
    rng = np.random.default_rng(seed)
    model = mlp([12, 20], [activation], density=0.25, seed=seed)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    compiled = undense.compile(model, calibration=x, bits=bits,
                               images_per_second=100e6 / (20 * 12 / pe + 20))  # asks for about `pe` elements
    graph = compiled.graph
    (node,) = graph.nodes
    codes = golden.quantize_input(graph, x[:12])
    expected = golden.run_codes(graph, codes)[graph.output]
    run_stream_bench(mvau_for(graph, node), "layer", codes, expected, signed=graph.quant[graph.output].signed)
