"""Fork, skip buffer and elementwise Add in a small residual accelerator under cocotb, gaps and stalls."""
import numpy as np
import pytest

import undense
from undense.compiler import golden
from undense.compiler.passes.fold import fold
from undense.compiler.targets import target
from undense.hw.top import Accelerator, code_shape, output_lanes
from undense.runtime.synthetic import residual_block


@pytest.mark.first
def test_residual_block_matches_golden(run_stream_bench):
    """As the 85F folds it, the Add merging three lanes (one PE a layer: the shipped cocotb bench's residual test)."""
    x = np.random.default_rng(4).normal(size=(100, 10)).astype(np.float32)
    graph = undense.compile(residual_block(10), calibration=x).graph
    graph = fold(graph, target("ecp5-85k"), samples=x, groups={"fc1": 3, "fc2": 3})
    assert graph.edges[graph.output].lanes == 3
    codes = golden.quantize_input(graph, x[:6])
    expected = golden.run_codes(graph, codes)[graph.output]
    bits = code_shape(graph.quant[graph.output]).width
    run_stream_bench(Accelerator(graph), "residual_top", codes, expected, signed=True, lanes=output_lanes(graph),
                     bits=bits)
