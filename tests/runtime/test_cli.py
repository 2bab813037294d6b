"""The command line as users meet it: a real `python -m undense` process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


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


def assert_one_line_error(done, *expected):
    """Exit 2 and nothing on stderr but one `Error:` line (the README's promise), nothing on stdout."""
    line = assert_clean_usage_error(done, *expected)
    assert done.stderr.splitlines() == [line] and done.stdout == ""
    return line


@pytest.mark.parametrize("args,expected", [
    (["frobnicate"], ["No such command 'frobnicate'", "`undense --help`"]),
    (["--frobnicate"], ["No such option '--frobnicate'", "`undense --help`"]),
    (["sample"], ["Missing argument 'MODEL'", "`undense sample --help`"]),
    (["compile", "--bits", "x"], ["'--bits': 'x' is not a valid integer", "`undense compile --help`"]),
    (["run", ".", "--frobnicate"], ["No such option '--frobnicate'", "`undense run --help`"]),
    (["sim", ".", "-n", "0"], ["'-n': 0 is not in the range x>=1"]),
    (["sim", ".", "-n", "-3"], ["'-n': -3 is not in the range x>=1"]),
    (["generate", ".", "-n", "0"], ["'-n': 0 is not in the range x>=1"]),
    (["sample", "models/digits/generator.onnx", "-n", "0"], ["'-n': 0 is not in the range x>=1"]),
])
def test_a_usage_error_is_one_line(args, expected):
    done = undense(*args, cwd=REPO)
    assert_one_line_error(done, *expected)


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


# -- damaged numbers (issue 13): one Error: line naming the tensor and node, exit 2, no build dir --------------

def changed(built: onnx.ModelProto, name: str, value=None, data_type=None) -> onnx.ModelProto:
    """The model with the first number of initializer `name` set to `value`, or its data type set."""
    tensor = next(t for t in built.graph.initializer if t.name == name)
    if data_type is not None:
        tensor.data_type = data_type
        return built
    values = onnx.numpy_helper.to_array(tensor).copy()
    values.reshape(-1)[0] = value
    tensor.CopyFrom(onnx.numpy_helper.from_array(values, name))
    return built


def generator_with(name, **change):
    return lambda generator_path: changed(onnx.load(str(generator_path)), name, **change)


def qlinear_with(name, **change):
    from undense.runtime.synthetic import qlinear_matmul

    return lambda generator_path: changed(qlinear_matmul(), name, **change)


def two_outputs_with_topk(generator_path):
    from undense.runtime.synthetic import topk_with_two_outputs

    return topk_with_two_outputs()


DAMAGED = {
    "NaN weight": (generator_with("fc2.weight", value=np.nan), ["'fc2'", "'fc2.weight'", "1 NaN"]),
    "infinite weight": (generator_with("fc1.bias", value=-np.inf), ["'fc1'", "'fc1.bias'", "1 infinite"]),
    "zero scale": (qlinear_with("ws", value=0.0), ["'qmm'", "scale 'ws' is 0"]),
    "negative scale": (qlinear_with("xs", value=-0.02), ["'qmm'", "scale 'xs' is -0.02"]),
    "NaN scale": (qlinear_with("ys", value=np.nan), ["'qmm'", "scale 'ys' is nan"]),
    "data type 39": (generator_with("fc3.weight", data_type=39), ["'fc3'", "'fc3.weight'", "data type 39"]),
    "TopK and two outputs": (two_outputs_with_topk, ["'top3'", "TopK", "unsupported op"]),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_model_is_refused_in_one_line(case, generator_path, tmp_path):
    make, expected = DAMAGED[case]
    onnx.save(make(generator_path), tmp_path / "damaged.onnx")
    done = undense("compile", str(tmp_path / "damaged.onnx"), "-o", str(tmp_path / "build"))
    assert_clean_usage_error(done, *expected)
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["damaged.onnx"]


# -- internal errors: one line naming the stage, the traceback in a file, exit 3; --debug shows it ------------

def undense_with_a_bug(*args, tmp_path):
    """`undense ARGS` where the quantize pass raises RuntimeError, the temporary folder set to tmp_path/tmp."""
    script = ("import sys; from undense.compiler import pipeline\n"
              "def broken(*args, **kwargs): raise RuntimeError('boom')\n"
              "pipeline.quantize = broken\n"
              "from undense.runtime.cli import main; main(prog_name='undense')")
    (tmp_path / "tmp").mkdir()
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})


def test_internal_error_is_one_line_with_the_traceback_in_a_file(generator_path, tmp_path):
    done = undense_with_a_bug("compile", str(generator_path), "-o", str(tmp_path / "build"), tmp_path=tmp_path)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("internal error in compile (quantize): RuntimeError: boom")
    assert "report" in line
    [crash] = (tmp_path / "tmp").iterdir()
    assert str(crash) in line
    assert "Traceback" in crash.read_text() and "RuntimeError: boom" in crash.read_text()
    assert not (tmp_path / "build").exists()


def test_debug_shows_the_traceback(generator_path, tmp_path):
    done = undense_with_a_bug("--debug", "compile", str(generator_path), "-o", str(tmp_path / "build"),
                              tmp_path=tmp_path)
    assert done.returncode not in (0, 2, 3)
    assert "Traceback" in done.stderr and done.stderr.strip().endswith("RuntimeError: boom")
    assert not (tmp_path / "build").exists() and not any((tmp_path / "tmp").iterdir())


def test_user_errors_stay_exit_2_with_debug(tmp_path):
    done = undense("--debug", "run", str(tmp_path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y"))
    assert_clean_usage_error(done, "x.npy")


# -- a user's own model (issue 14): every command does what was asked or stops before the work in one line ----

@pytest.fixture(scope="module")
def tanh_model(tmp_path_factory):
    """A generator that is not the bundled one: 16 -> 32 (ReLU) -> 48 (Tanh), outputs in [-1, 1], not square."""
    from undense.runtime.synthetic import mlp

    path = tmp_path_factory.mktemp("tanh") / "tanh.onnx"
    onnx.save(mlp([16, 32, 48], ["Relu", "Tanh"]), path)
    return path


def build_dir(model, directory, samples=256):
    """The model compiled into `directory` through the Python API (faster than the command)."""
    from undense.runtime.compiled import compile

    return compile(model, directory, calibration=f"normal:{samples}").directory


@pytest.fixture
def tanh_build(tanh_model, tmp_path):
    return build_dir(tanh_model, tmp_path / "build")


def test_generate_draws_a_non_square_tanh_output_and_does_not_score_it(tanh_build, tmp_path):
    output = tmp_path / "new" / "grid.png"
    done = undense("generate", str(tanh_build), "-n", "6", "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert f"6 images (golden) as 1x48 greyscale strips, values [-1, 1] (tanh) -> {output}" in done.stdout
    assert "no quality score: the quality score is defined for 8x8 or 28x28 greyscale digits" in done.stdout
    assert Image.open(output).size == (8 * (48 + 2), 8 * (6 * 2 + 1))  # one strip a row
    generated = json.loads((tanh_build / "generate.json").read_text())
    assert generated["quality_score"] is None and "1x48 greyscale strips" in generated["quality_note"]
    assert generated["value_range"] == [-1.0, 1.0] and generated["value_range_from"] == "tanh"


def picture_model(channels: int) -> onnx.ModelProto:
    """8 latents -> Sigmoid -> reshaped to [channels, 4, 4]."""
    from onnx import helper

    from undense.runtime.synthetic import model, sparse_matrix

    size = channels * 16
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Sigmoid", ["h"], ["a"], name="act"),
             helper.make_node("Reshape", ["a", "shape"], ["y"], name="to_image")]
    return model(nodes, {"w": sparse_matrix(np.random.default_rng(0), size, 8, 0.5), "b": np.zeros(size, np.float32),
                         "shape": np.array([-1, channels, 4, 4])}, 8, None, output_shape=[channels, 4, 4])


def test_generate_draws_rgb_and_refuses_other_channels_before_the_work(tmp_path):
    rgb = build_dir(picture_model(3), tmp_path / "rgb", samples=64)
    done = undense("generate", str(rgb), "-n", "4")
    assert done.returncode == 0, done.stderr
    assert "as 4x4 RGB tiles, values [0, 1] (sigmoid)" in done.stdout and "no quality score" in done.stdout
    assert Image.open(rgb / "grid.png").mode == "RGB"
    two = build_dir(picture_model(2), tmp_path / "two", samples=64)
    done = undense("generate", str(two), "-n", "4", "--backend", "rtl")
    assert_one_line_error(done, "shaped [2, 4, 4] per image, which is not a picture", "undense run")
    assert sorted(p.name for p in two.iterdir()) == ["compile.json", "manifest.json", "weights.npz"]  # no RTL run


@pytest.mark.parametrize("command", ["generate", "sample"])
def test_an_image_output_needs_an_image_suffix_and_a_folder(command, tanh_build, tanh_model, tmp_path):
    source = tanh_build if command == "generate" else tanh_model
    (tmp_path / "file").write_text("")
    for output, expected in ((tmp_path / "grid.txt", "name an image file ending in .png"),
                             (tmp_path / "grid", "name an image file"),
                             (tmp_path / "file" / "grid.png", "file is a file, so no folder can be made there")):
        assert_one_line_error(undense(command, str(source), "-o", str(output)), f"-o {output}", expected)
    assert not (tmp_path / "grid.txt").exists() and not (tanh_build / "generate.json").exists()


def test_sample_follows_generates_rules(tanh_model, tmp_path):
    output = tmp_path / "new" / "samples.png"
    done = undense("sample", str(tanh_model), "-n", "6", "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert "as 1x48 greyscale strips, values [-1, 1] (tanh)" in done.stdout
    assert "no quality score" in done.stdout and "quality score 1" not in done.stdout
    assert Image.open(output).size == (8 * (48 + 2), 8 * (6 * 2 + 1))


def saved(tmp_path, name, array, **options):
    np.save(tmp_path / name, array, **options)
    return tmp_path / name


RUN_INPUTS = {
    "empty batch": (lambda p: saved(p, "x.npy", np.zeros((0, 16), np.float32)), "an empty batch"),
    "strings": (lambda p: saved(p, "x.npy", np.full((2, 16), "a")), "the inputs are text"),
    "objects": (lambda p: saved(p, "x.npy", np.zeros((2, 16), object), allow_pickle=True), "cannot read the inputs"),
    "a text file": (lambda p: p.joinpath("x.npy").write_text("1, 2, 3") and p / "x.npy", "is not a .npy file"),
    "an .npz file": (lambda p: np.savez(p / "x.npz", x=np.zeros((2, 16))) or p / "x.npz", "is not a .npy file"),
    "NaN": (lambda p: saved(p, "x.npy", np.full((2, 16), np.nan, np.float32)), "32 NaN and 0 infinite values"),
    "infinite": (lambda p: saved(p, "x.npy", np.full((2, 16), np.inf, np.float32)), "0 NaN and 32 infinite values"),
    "wrong features": (lambda p: saved(p, "x.npy", np.zeros((2, 15), np.float32)), "the model takes [N, 16]"),
}


@pytest.mark.parametrize("case", list(RUN_INPUTS))
def test_run_refuses_inputs_the_model_cannot_take(case, tanh_build, tmp_path):
    make, expected = RUN_INPUTS[case]
    done = undense("run", str(tanh_build), "--input", str(make(tmp_path)), "-o", str(tmp_path / "y.npy"),
                   "--backend", "rtl")
    assert_one_line_error(done, expected)
    assert not (tmp_path / "y.npy").exists() and not (tanh_build / "rtl").exists()


def test_run_writes_npy_into_a_new_folder_and_refuses_another_suffix(tanh_build, tmp_path):
    x = saved(tmp_path, "x.npy", np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32))
    output = tmp_path / "new" / "y.npy"
    done = undense("run", str(tanh_build), "--input", str(x), "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"3 outputs (golden) -> {output}" and np.load(output).shape == (3, 48)
    assert_one_line_error(undense("run", str(tanh_build), "--input", str(x), "-o", str(tmp_path / "y")),
                          "-o", "name a .npy file, e.g. y.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "new", "x.npy"]  # no y, no y.npy


def test_sim_below_a_steady_state_says_so_and_power_will_not_use_it(tanh_build, tmp_path):
    wave = tmp_path / "new" / "run.vcd"
    done = undense("sim", str(tanh_build), "-n", "1", "--wave", str(wave))
    assert done.returncode == 0, done.stderr
    report = json.loads((tanh_build / "sim.json").read_text())
    assert report["steady_state"] is False and report["images_needed_for_steady_state"] == 9
    assert "not a steady state, which needs 9" in done.stdout and f"waveform -> {wave}" in done.stdout
    assert wave.stat().st_size > 1000 and "layer1" in wave.read_text()  # the ONNX layer names label its scopes
    assert done.stderr.startswith("Warning: 1 image cannot show a steady state, which needs 9")
    assert_one_line_error(undense("power", str(tanh_build)), "from 1 image, fewer than the 9 a steady state needs",
                          f"undense sim {tanh_build} -n 9")
    assert not (tanh_build / "power.json").exists()
    done = undense("sim", str(tanh_build), "-n", "9", "--wave", str(wave))
    assert done.returncode == 0 and done.stderr == "" and "in steady state" in done.stdout
    assert json.loads((tanh_build / "sim.json").read_text())["steady_state"] is True
    done = undense("power", str(tanh_build))
    assert done.returncode == 0, done.stderr


def test_sim_refuses_a_waveform_it_cannot_write(tanh_build, tmp_path):
    assert_one_line_error(undense("sim", str(tanh_build), "--wave", str(tmp_path / "run.txt")), "name a .fst or .vcd")
    assert not (tanh_build / "sim.json").exists() and not (tanh_build / "rtl").exists()


def test_compile_into_a_build_dir_says_what_it_replaces_and_clears_a_killed_compiles_staging(tanh_model, tanh_build):
    for name in ("sim.json", "synth.json", "power.json", "grid.png"):
        (tanh_build / name).write_text("{}")
    killed = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that has ended, as a killed compile
    killed.wait()
    staging = tanh_build.parent / f".build.{killed.pid}-k1ll3d"
    staging.mkdir()
    (staging / "manifest.json").write_text("{}")
    done = undense("compile", str(tanh_model), "-o", str(tanh_build), "--calib", "normal:256")
    assert done.returncode == 0, done.stderr
    assert (f"replaced the earlier build in {tanh_build}, and with it its grid.png, power.json, sim.json, synth.json"
            in done.stdout)
    assert sorted(p.name for p in tanh_build.iterdir()) == ["compile.json", "manifest.json", "weights.npz"]
    assert sorted(p.name for p in tanh_build.parent.iterdir()) == ["build"]


def test_compile_for_target_auto_says_which_part_it_picked_and_why(tmp_path, generator_path):
    done = undense("compile", generator_path, "-o", tmp_path / "auto", "--target", "auto")
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "--target auto picked ecp5-85k: the smallest target that holds the design" in said
    assert json.loads((tmp_path / "auto" / "compile.json").read_text())["target_choice"]["picked"] == "ecp5-85k"
