"""The bundled digit generator, read from the committed files."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from undense.runtime.float_model import sample_float
from undense.runtime.quality import quality_score

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "digits"
GENERATOR = MODEL_DIR / "generator.onnx"


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    model = onnx.load(str(GENERATOR))
    onnx.checker.check_model(model, full_check=True)
    return model


def weight_matrices(model):
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {node.name: inits[node.input[1]] for node in model.graph.node
            if node.op_type in ("Gemm", "MatMul") and node.input[1] in inits}


def test_architecture_fits_the_brief(model):
    assert model.opset_import[0].version >= 17
    ops = {node.op_type for node in model.graph.node}
    assert ops <= {"Gemm", "MatMul", "Add", "Relu", "LeakyRelu", "Sigmoid", "Tanh"}
    latent = model.graph.input[0].type.tensor_type.shape.dim
    assert latent[0].dim_param and 0 < latent[1].dim_value <= 16
    weights = weight_matrices(model)
    assert len(weights) >= 3
    assert sum(w.size for w in weights.values()) >= 16_000


def test_every_weight_layer_is_at_least_85_percent_zeros(model):
    for name, w in weight_matrices(model).items():
        assert np.mean(w == 0) >= 0.85, f"{name}: only {np.mean(w == 0):.1%} zeros"


def test_runs_with_onnxruntime():
    session = ort.InferenceSession(str(GENERATOR), providers=["CPUExecutionProvider"])
    latents = np.load(MODEL_DIR / "calib_latents.npy")
    assert latents.dtype == np.float32 and 200 <= len(latents) <= 1000
    (pixels,) = session.run(None, {"latent": latents[:5]})
    assert pixels.shape == (5, 64)
    assert np.all((pixels >= 0) & (pixels <= 1))


def test_float_model_scores_near_the_real_images(real_digits):
    real_score = quality_score(real_digits[0])
    generated = quality_score(sample_float(GENERATOR, 1000, seed=2024))
    assert generated.score >= 0.7 * real_score.score, (generated.score, real_score.score)
    assert generated.min_class_share >= 0.02, generated.class_shares
