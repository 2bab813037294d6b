"""The command line as users meet it: a real `python -m undense` process."""
import subprocess
import sys

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
