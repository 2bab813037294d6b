"""The skid-buffer register stage on Verilator: every value out in order, under input gaps and output stalls."""
import numpy as np
import pytest
from amaranth import signed

from undense.hw.stream_register import StreamRegister


@pytest.mark.parametrize("gap,stall", [(0.0, 0.0), (0.3, 0.6), (0.0, 0.8), (0.7, 0.1)])
def test_register_passes_every_value_in_order(run_stream_bench, gap, stall):
    values = np.random.default_rng(int(gap * 10 + stall * 100)).integers(-128, 128, size=300)
    run_stream_bench(StreamRegister(signed(8)), "stream_register", values, values, signed=True, gap=gap,
                     stall=stall)
