"""Fork, skip buffer and elementwise Add in a small residual accelerator under cocotb, gaps and stalls."""
import numpy as np
from onnx import helper

import undense
from undense.compiler import golden
from undense.hw.top import Accelerator
from undense.runtime.synthetic import model, sparse_matrix


def test_residual_block_matches_golden(run_stream_bench):
    rng = np.random.default_rng(4)
    inits = {"w1": sparse_matrix(rng, 10, 10, 0.4), "w2": sparse_matrix(rng, 10, 10, 0.4)}
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["a1"], name="fc1_relu"),
             helper.make_node("Gemm", ["a1", "w2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Add", ["h2", "a1"], ["y"], name="residual")]
    x = rng.normal(size=(100, 10)).astype(np.float32)
    graph = undense.compile(model(nodes, inits, 10, 10), calibration=x).graph
    codes = golden.quantize_input(graph, x[:6])
    expected = golden.run_codes(graph, codes)[graph.output]
    run_stream_bench(Accelerator(graph), "residual_top", codes, expected, signed=True)
