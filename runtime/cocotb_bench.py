"""A cocotb bench on a compiled model's Verilog (`undense cocotb`): the shipped one (sim/top_bench.py) or a
user's own file, on Verilator or Icarus, its result in DIR/cocotb.json.

The simulator builds and the last run's simulator output stay in DIR/cocotb/; the bench learns its case (build
dir, input codes, weight bytes) from a file that sim.testbench reads.
"""
import importlib.util
import json
import re
import tempfile
from pathlib import Path

from undense.compiler import builddir, golden
from undense.errors import UndenseError
from undense.hw.emit import TOP_NAME, current_verilog, weights_file
from undense.sim.runner import CocotbResult, NoResults, check_tools, run_tests, wave_options
from undense.sim.testbench import CASE_ENV, write_case

SHIPPED_BENCH = "undense.sim.top_bench"
REPORT = "cocotb.json"
WORK = "cocotb"  # DIR/cocotb/: simulator builds and the last run's output
FAILURES_WITH_A_MESSAGE = ("AssertionError", "UndenseError")  # a check that failed, not code that broke


def bench_module(bench: Path) -> str:
    """The module name under which cocotb imports a user's bench file; refused when it cannot be one."""
    if not bench.is_file():
        raise UndenseError(f"--bench {bench}: no such file; name a cocotb bench (.py), e.g. the one in "
                           "docs/hardware.md")
    if bench.suffix != ".py":
        raise UndenseError(f"--bench {bench}: a bench is a Python file (.py)")
    name = bench.stem
    if not name.isidentifier():
        raise UndenseError(f"--bench {bench}: cocotb imports the bench as module '{name}', which is not a Python "
                           "name; rename the file with letters, digits and _ only")
    found = importlib.util.find_spec(name)
    if found is not None and found.origin != str(bench.resolve()):
        raise UndenseError(f"--bench {bench}: Python already has a module named '{name}' ({found.origin}), which "
                           "cocotb would import instead; rename the file")
    return name


def check_options(count: int, bench: Path | None, simulator: str, wave: Path | None) -> str:
    """Everything about a run that can be refused before any work; creates the waveform's folder. Returns the
    bench's module name."""
    if count < 1:
        raise UndenseError(f"-n {count}: a bench needs at least 1 image")
    module = SHIPPED_BENCH if bench is None else bench_module(bench)
    check_tools(simulator)
    wave_options(simulator, wave)
    if wave is not None:
        try:
            wave.resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UndenseError(f"--wave {wave}: cannot create its folder ({error.strerror})") from None
    return module


def run_bench(compiled, count: int = 8, seed: int = 0, bench: Path | None = None, simulator: str = "verilator",
              wave: Path | None = None, progress=lambda step: None) -> dict:
    """Run the bench on `compiled`'s accelerator (the Verilog of its target's family, weight port included) with
    `count` random inputs; returns the report (write it with write_report, judge it with failure)."""
    module = check_options(count, bench, simulator, wave)
    directory = compiled.directory.resolve()
    progress("writing Verilog")
    verilog = current_verilog(compiled.graph, directory, family=compiled.target.family)
    work = directory / WORK
    work.mkdir(exist_ok=True)
    log = work / f"{simulator}.log"
    wave = None if wave is None else wave.resolve()
    before = _stamp(wave)
    inputs = golden.quantize_input(compiled.graph, compiled.random_inputs(count, seed))
    with tempfile.TemporaryDirectory(dir=work, prefix="run-") as run:
        run = Path(run)
        figures = run / "figures.json"
        case = write_case(run / "case.json", directory, inputs, weights_file(verilog), figures, seed)
        try:
            results = run_tests([verilog], TOP_NAME, module, run, work, {CASE_ENV: str(case)}, log, simulator, wave,
                                None if bench is None else bench.parent, progress)
        except NoResults as error:
            raise _not_started(error, bench) from None
        figures = json.loads(figures.read_text()) if figures.is_file() else {}
    return {
        "bench": "shipped" if bench is None else str(bench.resolve()),
        "module": module,
        "simulator": simulator,
        "images": count,
        "seed": seed,
        "tests": [_test_json(result, bench is None) for result in results],
        "failures": sum(not result.passed for result in results),
        "figures": figures,
        "wave": str(wave) if wave is not None and _stamp(wave) not in (None, before) else None,
        "log": str(log),
    }


def failure(report: dict) -> Exception | None:
    """What a failed run raises: an UndenseError naming the first failing test and its message (the mismatch, for
    the shipped bench), or, for code of undense that broke, a RuntimeError (a bug); None when every test passed."""
    failed = [test for test in report["tests"] if not test["passed"]]
    if not failed:
        return None
    test = failed[0]
    others = f" ({len(failed) - 1} more failed)" if len(failed) > 1 else ""
    if test["internal"]:
        return RuntimeError(f"cocotb test {test['name']} raised {test['kind']}: {test['message']}{others}\n"
                            f"{test['traceback']}")
    if test["kind"] in FAILURES_WITH_A_MESSAGE:
        what = test["message"]
    else:
        what = f"{test['kind']}: {test['message']} at {test['where']}"
    return UndenseError(f"cocotb test {test['name']} failed on {report['simulator']}: {what}{others}; "
                        f"the simulator's output: {report['log']}")


def write_report(directory: Path, report: dict) -> Path:
    return builddir.write_report(directory, REPORT, report)


def _not_started(error: NoResults, bench: Path | None) -> Exception:
    """A bench that cocotb could not start is the user's to fix (an import that fails, no test in it) unless it is
    the shipped one or the error was raised in undense."""
    frames = _frames(error.traceback)
    if bench is None or (frames and _in_undense(Path(frames[-1][0]))):
        return error
    at = f" (line {frames[-1][1]})" if frames and Path(frames[-1][0]) == bench.resolve() else ""
    hint = "; mark each test coroutine with @cocotb.test()" if "No tests were discovered" in error.error else ""
    return UndenseError(f"--bench {bench}: cocotb could not run it: {error.error}{at}{hint}; the simulator's "
                        f"output: {error.log}")


def _frames(traceback: str) -> list[tuple[str, str]]:
    """(file, line) of each frame of a Python traceback, innermost last, without Python's frozen modules."""
    return [(file, line) for file, line in re.findall(r'File "([^"]+)", line (\d+)', traceback)
            if not file.startswith("<")]


def _test_json(result: CocotbResult, shipped: bool) -> dict:
    if result.passed:
        return {"name": result.name, "passed": True}
    frames = _frames(result.traceback)
    where = f"{frames[-1][0]}:{frames[-1][1]}" if frames else "?"
    broke = result.kind not in FAILURES_WITH_A_MESSAGE
    internal = broke and (shipped or (bool(frames) and _in_undense(Path(frames[-1][0]))))
    # cocotb's rewritten asserts add pytest-style explanation lines: the first line is the message
    message = result.message.splitlines()[0] if result.message.strip() else "(no message)"
    return {"name": result.name, "passed": False, "kind": result.kind, "message": message, "where": where,
            "internal": internal, "traceback": result.traceback}


def _in_undense(path: Path) -> bool:
    roots = [Path(importlib.util.find_spec(name).origin).parent
             for name in ("undense", "undense.compiler", "undense.hw", "undense.sim", "undense.runtime")]
    return any(path.resolve().is_relative_to(root) for root in roots)


def _stamp(path: Path | None):
    """A file's size and time of change, to tell whether a run wrote it (None if absent)."""
    if path is None or not path.is_file():
        return None
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def summary(report: dict) -> list[str]:
    """The lines `undense cocotb` prints: each test's outcome, then the bench's figures."""
    passed = len(report["tests"]) - report["failures"]
    lines = [f"{report['module']} on {report['simulator']}, {_images(report['images'])} (seed {report['seed']}): "
             f"{passed} of {len(report['tests'])} tests passed"]
    lines += [f"  {test['name']}: " + ("passed" if test["passed"] else f"FAILED: {test['message']}")
              for test in report["tests"]]
    figures = dict(report["figures"])
    if {"images", "cycles"} <= figures.keys():
        images, cycles = figures.pop("images"), figures.pop("cycles")
        line = (f"{_images(images)} in {cycles:,} cycles ({cycles / images:,.0f} per image with random input gaps "
                "and output back-pressure, so slower than `undense sim` measures)")
        loaded = figures.pop("weight_load_cycles", 0)
        lines.append(line + (f", after {loaded:,} cycles loading the weights" if loaded else ""))
        for name in ("outputs", "input_gap", "output_stall"):
            figures.pop(name, None)
    if figures:
        lines.append("figures: " + ", ".join(f"{name} {value:,}" if isinstance(value, int | float) else
                                             f"{name} {value}" for name, value in figures.items()))
    return lines


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"
