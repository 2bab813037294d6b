"""The pinned stream FIFO on Verilator: every value out in order, under input gaps and output stalls."""
import numpy as np
import pytest
from amaranth import signed

from undense.hw.fifo import StreamFIFO


@pytest.mark.parametrize("depth,gap,stall", [(16, 0.3, 0.6), (3, 0.0, 0.8), (16, 0.7, 0.0)])
def test_fifo_passes_every_value_in_order(run_stream_bench, depth, gap, stall):
    values = np.random.default_rng(depth).integers(-128, 128, size=200)
    run_stream_bench(StreamFIFO(signed(8), depth, "distributed"), "fifo", values, values, signed=True, gap=gap,
                     stall=stall)
