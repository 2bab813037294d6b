"""The command line as users meet it: a real `python -m undense` process."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image


def undense(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "undense", *args], capture_output=True, text=True, cwd=cwd)


def assert_clean_usage_error(done, *expected):
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, done.stderr
    for text in expected:
        assert text in error_lines[0]
    return error_lines[0]


def test_unknown_command():
    done = undense("frobnicate")
    assert_clean_usage_error(done, "frobnicate")
    assert "Usage: undense" in done.stderr


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    done = undense("sample", str(missing))
    assert_clean_usage_error(done, "nope.onnx", "does not exist")


def test_malformed_model(tmp_path):
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf")
    output = tmp_path / "grid.png"
    done = undense("sample", str(bad), "-o", str(output))
    assert_clean_usage_error(done, "truncated.onnx", "valid ONNX")
    assert not output.exists()


def test_sample_writes_a_grid_and_scores_it(generator_path, tmp_path):
    output = tmp_path / "grid.png"
    done = undense("sample", str(generator_path), "-n", "16", "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert "quality score" in done.stdout
    assert Image.open(output).size == (8 * (8 * 9 + 1), 8 * (2 * 9 + 1))  # 16 tiles, 8 a row


@pytest.mark.parametrize("args", [["--help"], ["sample", "--help"], ["doctor", "--help"]])
def test_help(args):
    done = undense(*args)
    assert done.returncode == 0 and "Usage:" in done.stdout


def test_compile_then_run(generator_path, tmp_path):
    build = tmp_path / "build"
    done = undense("compile", str(generator_path), "-o", str(build), "--target", "ecp5-25k", "--bits", "6",
                   "--layer-bits", "fc3=8")
    assert done.returncode == 0, done.stderr
    for text in ("fc1", "fc2", "fc3", "cycles per image"):
        assert text in done.stdout
    assert {p.name for p in build.iterdir()} == {"manifest.json", "weights.npz", "compile.json"}
    latents = tmp_path / "z.npy"
    np.save(latents, np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32))
    done = undense("run", str(build), "--input", str(latents), "-o", str(tmp_path / "y.npy"), "--backend", "golden")
    assert done.returncode == 0, done.stderr
    images = np.load(tmp_path / "y.npy")
    assert images.shape == (10, 64) and np.all((images >= 0) & (images <= 1))


def test_compile_of_an_unsupported_model_writes_nothing(tmp_path):
    from onnx import helper

    from undense.runtime.synthetic import model

    bad = tmp_path / "softmax.onnx"
    onnx.save(model([helper.make_node("Softmax", ["x"], ["y"], name="probs")], {}, 4, 4), bad)
    done = undense("compile", str(bad), "-o", str(tmp_path / "build"))
    assert_clean_usage_error(done, "'probs'", "Softmax", "unsupported op")
    assert not (tmp_path / "build").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["softmax.onnx"]


def test_bad_layer_bits_option(generator_path, tmp_path):
    done = undense("compile", str(generator_path), "-o", str(tmp_path / "b"), "--layer-bits", "fc2")
    assert_clean_usage_error(done, "LAYER=BITS")


def test_run_on_a_folder_that_is_not_a_build_dir(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    done = undense("run", str(tmp_path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"))
    assert_clean_usage_error(done, "not an undense build dir")


def test_compile_reports_the_calibration_and_warns_when_fresh_latents_saturate(generator_path, tmp_path):
    done = undense("compile", str(generator_path), "-o", str(tmp_path / "bundled"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("calibration: 512 samples from") and "0th to 100th percentile" in line
               for line in lines)
    assert any(line.startswith("coverage: the input range") and "fresh latents saturate" in line for line in lines)
    assert any(line.startswith("Warning:") and "--calib normal:4096" in line for line in lines)
    done = undense("compile", str(generator_path), "-o", str(tmp_path / "normal"), "--calib", "normal:4096")
    assert done.returncode == 0, done.stderr
    assert "calibration: 4,096 samples of N(0, I)" in done.stdout and "Warning:" not in done.stdout


@pytest.mark.parametrize("calib,expected", [("normal:0", "whole number"), ("nope.npy", "no such calibration file")])
def test_bad_calib_option(generator_path, tmp_path, calib, expected):
    done = undense("compile", str(generator_path), "-o", str(tmp_path / "b"), "--calib", calib)
    assert_clean_usage_error(done, calib, expected)
    assert not (tmp_path / "b").exists()
