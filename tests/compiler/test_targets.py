"""The targets of compiler/data/targets.json, and `--target auto`: the smallest that holds the design at the best
throughput, or at the throughput asked for."""
import json
import subprocess
import sys

import onnx
import pytest

import undense
from undense.compiler.targets import AUTO_TARGET, by_size, target, targets
from undense.errors import DoesNotFit, UndenseError
from undense.runtime.synthetic import mlp

# The ECP5 family data sheet's table 1.1 (FPGA-DS-02012): LUTs, 18 Kbit block RAMs, 18 x 18 multipliers
ECP5_PARTS = {"ecp5-12k": ("LFE5U-12F", 12_000, 32, 28), "ecp5-25k": ("LFE5U-25F", 24_288, 56, 28),
              "ecp5-45k": ("LFE5U-45F", 43_848, 108, 72), "ecp5-85k": ("LFE5U-85F", 83_640, 208, 156)}


@pytest.mark.parametrize("name", ECP5_PARTS)
def test_the_ecp5_parts_have_the_data_sheets_capacities(name):
    part = target(name)
    device, lut, bram, dsp = ECP5_PARTS[name]
    assert (part.device, part.lut, part.bram_blocks, part.dsp) == (device, lut, bram, dsp)
    assert part.family == "ecp5" and part.bram_block_bits == 18 * 1024 and part.clock_mhz == 100
    assert part.nextpnr == (f"--{name.removeprefix('ecp5-')}", "--package", "CABGA381")
    assert "FPGA-DS-02012" in part.source


def test_targets_from_smallest_to_largest():
    assert [part.name for part in by_size()] == ["ice40-up5k", "ecp5-12k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
    assert [part.name for part in by_size("ecp5")] == ["ecp5-12k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
    assert AUTO_TARGET not in targets()


def test_auto_picks_the_85f_for_the_bundled_model(generator_path, tmp_path):
    """The event-driven core takes as many multipliers as the part has: only the 85F's 156 reach its highest
    throughput; the smaller parts hold it folded slower, the UP5K at its 24 MHz slower still."""
    compiled = undense.compile(generator_path, tmp_path / "auto", target_name="auto")
    assert compiled.target.name == "ecp5-85k" and compiled.report["target"] == "ecp5-85k"
    assert compiled.report["estimate"]["dsp"] > 84  # more than the 45F has
    choice = compiled.report["target_choice"]
    assert choice["asked"] == "auto" and choice["picked"] == "ecp5-85k"
    assert "smallest" in choice["rule"] and "images/s" in choice["rule"]
    fared = {entry["target"]: entry for entry in choice["candidates"]}
    assert list(fared) == [part.name for part in by_size()]
    assert fared["ecp5-25k"]["fits"] and not fared["ecp5-25k"]["fast_enough"] and "images/s" in fared["ecp5-25k"]["why"]
    assert not fared["ice40-up5k"]["fast_enough"]
    assert fared["ecp5-45k"]["images_per_second"] < fared["ecp5-85k"]["images_per_second"]
    same = undense.compile(generator_path, target_name="ecp5-85k")
    assert [layer["pe"] for layer in same.report["layers"]] == [layer["pe"] for layer in compiled.report["layers"]]
    assert same.report["target_choice"] == {"asked": "ecp5-85k", "picked": "ecp5-85k"}
    written = json.loads((tmp_path / "auto" / "compile.json").read_text())
    assert written["target"] == "ecp5-85k" and written["target_choice"]["picked"] == "ecp5-85k"
    assert undense.load(tmp_path / "auto").target.name == "ecp5-85k"


def test_auto_picks_the_smallest_part_for_a_tiny_model():
    tiny = mlp([8, 16, 8], ["Relu", None], density=0.5)
    assert undense.compile(tiny, target_name="auto", calibration="normal:64").target.name == "ecp5-12k"
    # asked for a throughput the UP5K reaches at its clock, the UP5K is smallest of all
    slow = undense.compile(tiny, target_name="auto", calibration="normal:64", images_per_second=10_000)
    assert slow.target.name == "ice40-up5k"
    assert slow.report["target_choice"]["rule"].startswith("the smallest target that reaches the 10000 images/s")


def huge() -> onnx.ModelProto:
    return mlp([1024, 1024], [None], density=1.0)  # a million weights: more than any target's block RAM


def test_auto_with_nothing_big_enough_is_one_clear_error():
    with pytest.raises(DoesNotFit, match=r"--target auto: no target holds the model \(ice40-up5k, ecp5-12k, "
                                         r"ecp5-25k, ecp5-45k, ecp5-85k\); on the largest, ecp5-85k: the model "
                                         r"needs [\d,]+ block RAMs \(ecp5-85k has 208\).*; at --bits 2 it fits$"):
        undense.compile(huge(), target_name="auto", calibration="normal:16")


def test_auto_at_a_rate_no_target_reaches_says_so():
    tiny = mlp([8, 16, 8], ["Relu", None], density=0.5)
    with pytest.raises(UndenseError, match="--target auto: no target holds the model at 1e[+]09 images/s .*cannot "
                                           "reach") as error:
        undense.compile(tiny, target_name="auto", calibration="normal:64", images_per_second=1e9)
    assert not isinstance(error.value, DoesNotFit)
    with pytest.raises(UndenseError, match="^--images-per-second must be positive, not -1$"):
        undense.compile(tiny, target_name="auto", calibration="normal:64", images_per_second=-1)


def test_compile_target_auto_on_the_command_line(generator_path, tmp_path):
    done = subprocess.run([sys.executable, "-m", "undense", "compile", str(generator_path), "-o",
                           str(tmp_path / "build"), "--target", "auto"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "compiled for ecp5-85k" in done.stdout
    model = tmp_path / "huge.onnx"
    onnx.save(huge(), model)
    failed = subprocess.run([sys.executable, "-m", "undense", "compile", str(model), "-o", str(tmp_path / "no"),
                             "--target", "auto", "--calib", "normal:16"], capture_output=True, text=True)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.count("Error:") == 1 and "--target auto: no target holds the model" in failed.stderr
