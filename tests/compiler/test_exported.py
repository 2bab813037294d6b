"""Models as torch.onnx.export writes them (made by exported/make_models.py, committed)."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import undense
from undense.compiler.frontend import import_onnx
from undense.compiler.ir import Dense, QAdd
from undense.compiler.passes.fuse import fuse
from undense.compiler.reference import run_float
from undense.errors import UndenseError
from undense.runtime.float_model import reference_options
from undense.runtime.synthetic import onnxruntime_quantized

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


CONV_EXPORTS = ["conv_dynamo_external.onnx", "conv_legacy.onnx"]


def onnxruntime_reference(path: Path, x: np.ndarray, options=None) -> np.ndarray:
    """onnxruntime on the model with its external data loaded (it cannot infer shapes through a shape constant
    stored outside the file, as the dynamo exporter writes it with size_threshold=0)."""
    session = ort.InferenceSession(onnx.load(str(path)).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("name", CONV_EXPORTS)
def test_exported_conv_decoder_computes_and_compiles_as_onnxruntime_does(name):
    path = EXPORTED / name
    x = np.random.default_rng(0).normal(size=(300, 10)).astype(np.float32)
    expected = onnxruntime_reference(path, x)
    graph = import_onnx(path)
    np.testing.assert_allclose(run_float(graph, x)[0][graph.output].reshape(expected.shape), expected,
                               rtol=1e-5, atol=1e-6)
    compiled = undense.compile(path, calibration=x)
    assert [layer["op"] for layer in compiled.report["layers"]] == [
        "dense", "conv_transpose", "conv", "add", "upsample_conv"]  # BatchNorm, activations, Upsample folded in
    error = np.abs(compiled.run(x).reshape(expected.shape) - expected)
    assert error.mean() < 0.02 and error.max() < 0.15  # the bounds of the exported MLPs above


def test_legacy_and_dynamo_exports_import_to_the_same_graph():
    """The legacy exporter's Shape/Gather/Unsqueeze/Concat for the symbolic batch, its BatchNormalization nodes
    and its Concat-built Resize scales come out as the dynamo exporter's constants do."""
    dynamo, legacy = (fuse(import_onnx(EXPORTED / name)) for name in CONV_EXPORTS)
    assert [type(n).__name__ for n in dynamo.nodes] == [type(n).__name__ for n in legacy.nodes]
    for ours, theirs in zip(dynamo.nodes, legacy.nodes, strict=True):
        if isinstance(ours, Dense):
            assert ours.geometry == theirs.geometry
            np.testing.assert_allclose(ours.weight, theirs.weight, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(ours.bias, theirs.bias, rtol=1e-6, atol=1e-7)
    assert dynamo.output_shape == legacy.output_shape == (1, 16, 16)


@pytest.mark.parametrize("per_channel", [False, True])  # per channel: Conv's axis 0, ConvTranspose's axis 1
def test_onnxruntime_quantized_conv_decoder_within_an_lsb(per_channel, tmp_path):
    path = EXPORTED / "conv_dynamo_external.onnx"
    x = np.random.default_rng(0).normal(size=(300, 10)).astype(np.float32)
    quantized = onnxruntime_quantized(onnx.load(str(path)), x[:100], tmp_path, per_channel=per_channel)
    assert {"ConvTranspose", "Conv", "Resize", "QuantizeLinear"} <= {n.op_type for n in quantized.graph.node}
    expected = ort.InferenceSession(quantized.SerializeToString(), reference_options(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compiled = undense.compile(quantized)
    step = compiled.graph.quant[compiled.graph.output].scale
    error = np.abs(compiled.run(x).reshape(expected.shape) - expected)
    assert error.max() <= 2 * step + 1e-6 and error.mean() < 0.05 * step


def test_resize_scales_a_quantizer_made_inexact_are_refused(tmp_path):
    """onnxruntime's quantizer quantizes the Resize scales the legacy exporter builds with Concat (and the model
    it writes then fails in onnxruntime itself); undense says why instead of guessing the factors."""
    x = np.random.default_rng(0).normal(size=(100, 10)).astype(np.float32)
    quantized = onnxruntime_quantized(onnx.load(str(EXPORTED / "conv_legacy.onnx")), x, tmp_path)
    with pytest.raises(UndenseError, match="'/up2/Resize' \\(Resize\\): its scales .* are not whole factors"):
        import_onnx(quantized)
