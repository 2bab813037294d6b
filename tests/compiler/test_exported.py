"""Models as torch.onnx.export writes them (made by exported/make_models.py, committed)."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import undense
from undense.compiler.frontend import import_onnx
from undense.compiler.ir import QAdd
from undense.compiler.reference import run_float

EXPORTED = Path(__file__).parent / "exported"


@pytest.mark.parametrize("name", ["dynamo_external.onnx", "legacy_batchnorm.onnx"])
def test_exporter_output_compiles_and_stays_close(name):
    path = EXPORTED / name
    x = np.random.default_rng(0).normal(size=(400, 12)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    graph = import_onnx(path)
    np.testing.assert_allclose(run_float(graph, x)[0][graph.output], expected, rtol=1e-4, atol=1e-5)
    compiled = undense.compile(path, calibration=x)
    assert len(compiled.graph.nodes) == 4  # three Gemm layers with BatchNorm and activations fused in, one Add
    assert sum(isinstance(n, QAdd) for n in compiled.graph.nodes) == 1
    error = np.abs(compiled.run(x) - expected)
    assert error.mean() < 0.02 and error.max() < 0.15


def test_external_weights_are_read_from_beside_the_file():
    assert (EXPORTED / "dynamo_external.onnx.data").is_file()
    graph = import_onnx(EXPORTED / "dynamo_external.onnx")
    assert sum(np.count_nonzero(n.weight) for n in graph.nodes if hasattr(n, "weight")) > 100


def test_legacy_exporter_layer_names_survive():
    compiled = undense.compile(EXPORTED / "legacy_batchnorm.onnx", calibration=np.zeros((1, 12)) + 0.1)
    assert [n.name for n in compiled.graph.nodes][:2] == ["/fc1/Gemm", "/fc2/Gemm"]
