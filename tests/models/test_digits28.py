"""The bundled 28x28 class-conditional convolutional generator, read from the committed files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

import undense
from undense.compiler.condition import CONDITION_KEY
from undense.runtime.compiled import load
from undense.runtime.float_model import sample_float
from undense.runtime.latents import random_latents
from undense.runtime.quality import class_probabilities, quality_score

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "digits28"
GENERATOR = MODEL_DIR / "generator.onnx"
SAMPLES = 1000
INPUTS = onnx.load(str(GENERATOR), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[1].dim_value


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    model = onnx.load(str(GENERATOR))
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def real_score() -> float:
    return quality_score(np.load(MODEL_DIR / "real_digits.npz")["images"] / 255.0).score


@pytest.fixture(scope="module")
def float_images() -> np.ndarray:
    return sample_float(GENERATOR, SAMPLES, seed=2024)  # the digits in turn


def weights(model):
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {node.name: inits[node.input[1]] for node in model.graph.node
            if node.op_type in ("Gemm", "MatMul", "Conv", "ConvTranspose") and node.input[1] in inits}


def test_architecture_fits_the_brief(model):
    ops = [node.op_type for node in model.graph.node]
    assert "Gemm" in ops and ops.count("ConvTranspose") + ops.count("Conv") >= 2 and "Resize" in ops
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and 10 < dims[1].dim_value <= 10 + 16  # latent numbers, then a one-hot of 10
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim[1:]] == [1, 28, 28]
    assert {p.key: p.value for p in model.metadata_props}[CONDITION_KEY] == "one_hot:10"
    assert sum(w.size for w in weights(model).values()) >= 20_000


def test_every_weight_layer_is_at_least_80_percent_zeros(model):
    for name, w in weights(model).items():
        assert np.mean(w == 0) >= 0.80, f"{name}: only {np.mean(w == 0):.1%} zeros"


def test_real_data_is_the_mnist_5k_set():
    real = np.load(MODEL_DIR / "real_digits.npz")
    assert real["images"].shape == (5000, 784) and np.bincount(real["labels"]).tolist() == [500] * 10


def test_float_model_scores_near_the_real_images_and_draws_every_digit(float_images, real_score):
    generated = quality_score(float_images)
    assert generated.score >= 0.75 * real_score, (generated.score, real_score)
    assert generated.min_class_share >= 0.05, generated.class_shares


def test_float_model_draws_the_digit_asked_for(float_images):
    asked = np.arange(SAMPLES) % 10
    assert np.mean(class_probabilities(float_images).argmax(axis=1) == asked) >= 0.9


def test_golden_scores_within_five_percent_of_the_float_model(float_images):
    compiled = undense.compile(GENERATOR)  # 8 bits, calibrated on the bundled calib_latents.npy
    golden = compiled.run(random_latents(INPUTS, SAMPLES, 2024, classes=10)).reshape(SAMPLES, -1)
    assert quality_score(golden).score >= 0.95 * quality_score(float_images).score
    assert {layer["op"] for layer in compiled.report["layers"]} == {"dense", "conv_transpose", "upsample_conv"}


def command_line(*args):
    return subprocess.run([sys.executable, "-m", "undense", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("digits28") / "build"
    done = command_line("compile", str(GENERATOR), "-o", str(directory))
    assert done.returncode == 0, done.stderr
    return directory


def test_sample_and_generate_draw_the_digit_asked_for(build, tmp_path):
    done = command_line("sample", str(GENERATOR), "-n", "20", "--digit", "7", "-o", str(tmp_path / "sevens.png"))
    assert done.returncode == 0 and "quality score" in done.stdout, done.stderr
    done = command_line("generate", str(build), "-n", "20", "--digit", "3", "-o", str(tmp_path / "threes.png"))
    assert done.returncode == 0, done.stderr
    report = json.loads((build / "generate.json").read_text())
    shares = report["class_shares"]
    assert report["digit"] == 3 and shares[3] == max(shares) and shares[3] >= 0.7, shares
    assert Image.open(tmp_path / "threes.png").size[0] > 28


def test_run_on_golden_equals_the_python_api(build, tmp_path):
    inputs = random_latents(INPUTS, 8, 5, classes=10, digit=1)
    np.save(tmp_path / "x.npy", inputs)
    done = command_line("run", str(build), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"))
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), load(build).run(inputs))
    assert np.load(tmp_path / "y.npy").shape == (8, 1, 28, 28)


def test_the_rtl_simulates_it_bit_exact_from_the_command_line(build):
    """The convolutions have their hardware unit: `undense sim` builds and runs the RTL, bit-exact."""
    done = command_line("sim", str(build), "-n", "8")
    assert done.returncode == 0 and "bit-exact against golden" in done.stdout, done.stderr
    report = json.loads((build / "sim.json").read_text())
    assert report["mismatches"] == 0 and report["event_mismatches"] == []


def test_a_digit_the_model_cannot_take_is_refused(build):
    done = command_line("generate", str(build), "-n", "4", "--digit", "10")
    assert done.returncode == 2 and "--digit 10: the model takes classes 0 to 9" in done.stderr
    done = command_line("sample", str(Path(__file__).resolve().parents[2] / "models" / "digits" / "generator.onnx"),
                   "--digit", "3")
    assert done.returncode == 2 and "not class-conditional" in done.stderr
