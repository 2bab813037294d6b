"""The golden executor against onnxruntime: exact on integer ops, within an LSB where ORT rounds in float."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import undense
from undense.compiler.ir import QDense
from undense.runtime.synthetic import mlp, model


def onnxruntime_run(built: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("input_signed", [False, True])
def test_matmul_integer_is_exact(input_signed):
    """uint8 x int8 weights stay within 7 bits here: onnxruntime's x86 u8s8 kernel sums pairs of products in
    saturating 16-bit lanes (the reason for its `reduce_range` option), so with full 8-bit weights it departs
    from ONNX's exact int32; the golden executor does not (see the next test)."""
    rng = np.random.default_rng(0)
    limit = 127 if input_signed else 64
    weight = rng.integers(-limit, limit + 1, size=(24, 10)).astype(np.int8)
    weight[rng.random(weight.shape) < 0.7] = 0
    input_dtype = np.int8 if input_signed else np.uint8
    zero_point = np.array(-5 if input_signed else 131, dtype=input_dtype)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    built = model(nodes, {"w": weight, "x_zero": zero_point}, 24, 10,
                  input_type=TensorProto.INT8 if input_signed else TensorProto.UINT8, output_type=TensorProto.INT32)
    info = np.iinfo(input_dtype)
    x = rng.integers(info.min, info.max + 1, size=(200, 24)).astype(input_dtype)
    x[0], x[1] = info.min, info.max  # the extremes of the input range
    compiled = undense.compile(built)
    np.testing.assert_array_equal(compiled.run(x), onnxruntime_run(built, x))


def test_matmul_integer_with_full_range_weights_is_exact_int32_arithmetic():
    rng = np.random.default_rng(7)
    weight = rng.integers(-127, 128, size=(24, 10)).astype(np.int8)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    built = model(nodes, {"w": weight, "x_zero": np.array(131, np.uint8)}, 24, 10, input_type=TensorProto.UINT8,
                  output_type=TensorProto.INT32)
    x = rng.integers(0, 256, size=(200, 24)).astype(np.uint8)
    np.testing.assert_array_equal(undense.compile(built).run(x), (x.astype(np.int64) - 131) @ weight.astype(np.int64))


@pytest.mark.parametrize("per_column", [False, True])
def test_qlinear_matmul_within_one_lsb(per_column):
    """ORT requantizes in float and rounds half to even; undense in fixed point and rounds half up."""
    rng = np.random.default_rng(1)
    weight = rng.integers(-127, 128, size=(32, 12)).astype(np.int8)
    weight[rng.random(weight.shape) < 0.8] = 0
    weight_scale = (rng.uniform(0.001, 0.01, 12) if per_column else np.array(0.004)).astype(np.float32)
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8), "w": weight, "ws": weight_scale,
             "wz": np.array(0, np.int8), "ys": np.array(0.05, np.float32), "yz": np.array(120, np.uint8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    built = model(nodes, inits, 32, 12, input_type=TensorProto.UINT8, output_type=TensorProto.UINT8)
    x = rng.integers(0, 256, size=(500, 32)).astype(np.uint8)
    golden, expected = undense.compile(built).run(x), onnxruntime_run(built, x).astype(np.int64)
    assert np.abs(golden - expected).max() <= 1
    assert np.mean(golden != expected) < 0.05


def test_onnxruntime_quantized_qdq_model_is_imported_as_it_is(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_model = mlp([16, 48, 32, 10], ["Relu", "Relu", None], density=0.3, seed=3)
    rng = np.random.default_rng(4)
    samples = rng.normal(size=(64, 16)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"x": s[None]} for s in samples)

        def get_next(self):
            return next(self.items, None)

    onnx.save(float_model, tmp_path / "float.onnx")
    # reduce_range: 7-bit weights, which keep onnxruntime's own x86 u8s8 kernels exact (see above)
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    qdq = onnx.load(str(tmp_path / "qdq.onnx"))
    compiled = undense.compile(qdq)  # no calibration needed: every tensor is quantized in the file
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer}
    weight_codes = [v for k, v in stored.items() if v.dtype == np.int8 and v.ndim == 2]
    dense = [n for n in compiled.graph.nodes if isinstance(n, QDense)]
    assert len(dense) == 3
    for node, codes in zip(dense, weight_codes, strict=True):
        np.testing.assert_array_equal(node.dense_codes(), codes)  # the file's codes, not re-quantized
    x = rng.normal(size=(300, 16)).astype(np.float32)
    golden, expected = compiled.run(x), onnxruntime_run(qdq, x)
    step = compiled.graph.quant[compiled.graph.output].scale
    assert np.abs(golden - expected).max() <= 3 * step  # an LSB per layer at most, as ORT rounds in float
    assert np.abs(golden - expected).mean() < 0.25 * step


def test_bundled_model_stays_close_to_the_float_model(generator_path):
    from undense.runtime.float_model import random_latents, sample_float
    from undense.runtime.quality import quality_score

    compiled = undense.compile(generator_path)
    latents = random_latents(16, 1000, seed=2024)
    golden = compiled.run(latents)
    floating = sample_float(generator_path, 1000, seed=2024)
    assert np.abs(golden - floating).mean() < 0.02
    assert quality_score(golden).score >= 0.9 * quality_score(floating).score
