"""`undense cocotb` as users run it: the shipped bench and the docs' own bench on real build dirs, on Verilator
and Icarus, through a real `python -m undense` process."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import undense
from undense.compiler import golden
from undense.runtime.synthetic import residual_block

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hardware.md"
ICARUS = pytest.param("icarus", marks=pytest.mark.skipif(shutil.which("iverilog") is None,
                                                          reason="Icarus Verilog is not installed"))
SIMULATORS = [pytest.param("verilator"), ICARUS]
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")


def undense_cocotb(*args):
    return subprocess.run([sys.executable, "-m", "undense", "cocotb", *map(str, args)], capture_output=True,
                          text=True)


def error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    return line


def passed(done, build_dir: Path) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((build_dir / "cocotb.json").read_text())
    assert report["failures"] == 0 and report["tests"] and all(test["passed"] for test in report["tests"])
    return report


@pytest.fixture(scope="module")
def digits(tmp_path_factory, generator_path) -> Path:
    """The bundled model folded for a modest rate: one PE a layer, a small design for a quick build."""
    return undense.compile(generator_path, tmp_path_factory.mktemp("cocotb") / "digits",
                           images_per_second=20_000).directory


@pytest.fixture(scope="module")
def residual(tmp_path_factory) -> Path:
    """A residual block folded like `digits`, one PE a layer (3 where the 85F's best takes 15)."""
    x = np.random.default_rng(4).normal(size=(100, 10)).astype(np.float32)
    return undense.compile(residual_block(10), tmp_path_factory.mktemp("cocotb") / "residual",
                           calibration=x, images_per_second=100_000).directory


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shipped_bench_on_the_bundled_model(digits, simulator):
    done = undense_cocotb(digits, "--simulator", simulator, "-n", 2)
    report = passed(done, digits)
    assert report["simulator"] == simulator and report["bench"] == "shipped"
    assert report["figures"]["images"] == 2 and report["figures"]["outputs"] == 2 * 64
    assert report["figures"]["cycles"] > undense.load(digits).report["predicted_cycles_per_image"]
    assert "1 of 1 tests passed" in done.stdout and "matches_golden: passed" in done.stdout
    assert f"-> {digits / 'cocotb.json'}" in done.stdout


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shipped_bench_on_a_residual_model(residual, simulator):
    report = passed(undense_cocotb(residual, "--simulator", simulator, "-n", 4), residual)
    assert report["figures"]["images"] == 4


@needs_icarus
def test_shipped_bench_loads_the_weights_of_an_up5k_design(generator_path, tmp_path):
    """On the iCE40 UP5K the big weight memories sit in SPRAM: the bench sends weights.bin through `w` first."""
    build_dir = undense.compile(generator_path, tmp_path / "up5k", target_name="ice40-up5k").directory
    report = passed(undense_cocotb(build_dir, "--simulator", "icarus", "-n", 1), build_dir)
    loaded = (build_dir / "rtl" / "weights.bin").stat().st_size
    assert loaded > 0 and report["figures"]["weight_load_cycles"] >= loaded


def test_the_custom_bench_in_the_docs_runs_as_written(digits, tmp_path):
    text = DOCS.read_text()
    section = text[text.index("### A bench of your own"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"`undense cocotb build/digits (--bench my_bench.py -n 4)`", section).group(1).split()
    (tmp_path / "my_bench.py").write_text(code)
    done = undense_cocotb(digits, *command[:1], tmp_path / "my_bench.py", *command[2:])
    report = passed(done, digits)
    assert [test["name"] for test in report["tests"]] == ["four_images"]
    assert report["figures"]["cycles_for_four"] > 0 and "cycles_for_four" in done.stdout


@needs_icarus
def test_a_mismatch_names_the_layer_the_image_and_the_index(digits, tmp_path):
    """RTL of the intact model against a golden whose output layer has one bias changed."""
    tampered = tmp_path / "tampered"
    shutil.copytree(digits, tampered, ignore=shutil.ignore_patterns("cocotb", "cocotb.json"))
    subprocess.run([sys.executable, "-m", "undense", "rtl", str(tampered)], check=True, capture_output=True)
    arrays = dict(np.load(tampered / "weights.npz"))
    arrays["layer2.bias"][17] += 1 << 12  # fc3, the output layer
    np.savez(tampered / "weights.npz", **arrays)  # the manifest stays older than the Verilog: no new RTL
    compiled = undense.load(tampered)
    codes = golden.quantize_input(compiled.graph, compiled.random_inputs(1))
    want = golden.run_codes(compiled.graph, codes)[compiled.graph.output][0, 17]
    line = error_line(undense_cocotb(tampered, "--simulator", "icarus", "-n", 1))
    assert "matches_golden failed" in line and "image 0, output 17 of layer 'fc3'" in line
    assert f"golden {want}" in line
    report = json.loads((tampered / "cocotb.json").read_text())
    assert report["failures"] == 1 and "output 17" in report["tests"][0]["message"]


@needs_icarus
def test_a_failing_custom_bench_ends_in_its_message(residual, tmp_path):
    bench = tmp_path / "wrong_bench.py"
    bench.write_text('import cocotb\n\nfrom undense.sim import testbench\n\n\n@cocotb.test()\n'
                     'async def expects_too_much(dut):\n    bench = await testbench.start(dut)\n'
                     '    assert bench.outputs_per_image == 1000, "the model has 1000 outputs"\n')
    line = error_line(undense_cocotb(residual, "--simulator", "icarus", "--bench", bench))
    assert "expects_too_much failed" in line and "the model has 1000 outputs" in line


@needs_icarus
def test_a_bench_without_tests_is_refused(residual, tmp_path):
    bench = tmp_path / "empty_bench.py"
    bench.write_text("import cocotb\n")
    line = error_line(undense_cocotb(residual, "--simulator", "icarus", "--bench", bench))
    assert "@cocotb.test()" in line


@pytest.mark.parametrize("args, expected", [
    (["--bench", "{tmp}/missing_bench.py"], "no such file"),
    (["--bench", "{tmp}/notes.txt"], "Python file"),
    (["--bench", "{tmp}/my-bench.py"], "not a Python name"),
    (["-n", "0"], "at least 1 image"),
    (["--simulator", "icarus", "--wave", "{tmp}/run.vcd"], "name a .fst file"),
    (["--wave", "{tmp}/notes.txt/run.fst"], "cannot create its folder"),
])
def test_argument_errors_stop_before_any_work(residual, tmp_path, args, expected):
    build_dir = tmp_path / "untouched"
    shutil.copytree(residual, build_dir, ignore=shutil.ignore_patterns("cocotb", "cocotb.json", "rtl"))
    (tmp_path / "notes.txt").write_text("not a bench")
    (tmp_path / "my-bench.py").write_text("import cocotb\n")
    assert expected in error_line(undense_cocotb(build_dir, *(arg.format(tmp=tmp_path) for arg in args)))
    assert not (build_dir / "cocotb").exists() and not (build_dir / "rtl").exists()


def test_a_folder_that_is_not_a_build_dir_is_refused(tmp_path):
    assert "not an undense build dir" in error_line(undense_cocotb(tmp_path))


@needs_icarus
def test_wave_writes_the_file_it_names(residual, tmp_path):
    wave = tmp_path / "new folder" / "run.fst"
    done = undense_cocotb(residual, "--simulator", "icarus", "-n", 1, "--wave", wave)
    passed(done, residual)
    assert wave.stat().st_size > 1000 and f"waveform -> {wave}" in done.stdout
