"""The golden executor against onnxruntime: exact on integer ops, within an LSB where ORT rounds in float."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import undense
from undense.compiler.ir import QDense
from undense.compiler.passes.quantize import FINE_OUTPUT_BITS
from undense.runtime.float_model import reference_options
from undense.runtime.synthetic import mlp, model, onnxruntime_quantized


def onnxruntime_run(built: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(built.SerializeToString(), reference_options(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("input_signed", [False, True])
def test_matmul_integer_is_exact(input_signed):
    """Full 8-bit weights, equal to onnxruntime's in its exact mode (reference_options: its default x86 u8s8
    kernel without VNNI saturates pairs of products in 16 bits, the reason for its `reduce_range` option)."""
    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, size=(24, 10)).astype(np.int8)
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
    """ORT requantizes in float, undense in fixed point; both round half to even."""
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
    from onnxruntime.quantization import QuantType

    float_model = mlp([16, 48, 32, 10], ["Relu", "Relu", None], density=0.3, seed=3)
    rng = np.random.default_rng(4)
    # reduce_range: 7-bit weights, which keep onnxruntime's own x86 u8s8 kernels exact (see above)
    qdq = onnxruntime_quantized(float_model, rng.normal(size=(64, 16)).astype(np.float32), tmp_path,
                                per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8)
    compiled = undense.compile(qdq)  # no calibration needed: every tensor is quantized in the file
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer}
    weight_codes = [v for k, v in stored.items() if v.dtype == np.int8 and v.ndim == 2]
    dense = [n for n in compiled.graph.nodes if isinstance(n, QDense)]
    assert len(dense) == 3
    for node, codes in zip(dense, weight_codes, strict=True):  # the file's codes, not re-quantized (the fold
        # orders hidden neurons for its grid: passes/balance.py)
        np.testing.assert_array_equal(np.sort(node.dense_codes(), axis=None), np.sort(codes, axis=None))
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
    assert np.abs(golden - floating).mean() < 0.006  # 0.0027 measured: a Sigmoid input narrowed to where it moves
    assert quality_score(golden).score >= 0.9 * quality_score(floating).score


def full_range_codes(rng, dtype, shape) -> np.ndarray:
    """Codes drawn over the type's whole range, both ends included (one code alone: the lower end)."""
    info = np.iinfo(dtype)
    codes = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    codes.flat[:2] = [info.min, info.max][:codes.size]
    return codes


ZERO_POINTS = {"none": lambda rng, dtype: None, "per tensor": lambda rng, dtype: full_range_codes(rng, dtype, ())[()],
               "per column": lambda rng, dtype: full_range_codes(rng, dtype, (10,))}


@pytest.mark.parametrize("weight_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("weight_zero", list(ZERO_POINTS))
@pytest.mark.parametrize("input_dtype", [np.int8, np.uint8])
def test_matmul_integer_over_the_whole_code_range_is_exact(weight_dtype, weight_zero, input_dtype):
    """Weights reaching -128 (or 255), zero points anywhere in their type, per tensor or per column: ONNX's
    exact integer arithmetic, int8 -128 weights included (they once failed the verifier)."""
    rng = np.random.default_rng(11)
    weight = full_range_codes(rng, weight_dtype, (24, 10))
    weight[rng.random(weight.shape) < 0.3] = 0
    input_zero = np.array(np.iinfo(input_dtype).max, input_dtype)  # a zero point at the end of its range
    inits = {"w": weight, "x_zero": input_zero}
    zero = ZERO_POINTS[weight_zero](rng, weight_dtype)
    if zero is not None:
        inits["w_zero"] = np.asarray(zero, weight_dtype)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero", *(["w_zero"] if zero is not None else [])],
                              ["y"], name="mmi")]
    built = model(nodes, inits, 24, 10, input_type=helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype)),
                  output_type=TensorProto.INT32)
    x = full_range_codes(rng, input_dtype, (300, 24))
    x[2], x[3] = np.iinfo(input_dtype).min, np.iinfo(input_dtype).max
    weight_zero = np.zeros((), np.int64) if zero is None else np.asarray(zero, np.int64)
    exact = (x.astype(np.int64) - int(input_zero)) @ (weight.astype(np.int64) - weight_zero)
    np.testing.assert_array_equal(undense.compile(built).run(x), exact)


@pytest.mark.parametrize("weight_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("per_column", [False, True])
def test_qlinear_matmul_over_the_whole_code_range(weight_dtype, per_column):
    """Full-range weights with zero points, an input zero point of 255 and an output one of 0 (so the
    output saturates at both ends): within an LSB of onnxruntime, which requantizes in float."""
    rng = np.random.default_rng(12)
    weight = full_range_codes(rng, weight_dtype, (32, 12))
    weight_scale = (rng.uniform(0.001, 0.004, 12) if per_column else np.array(0.002)).astype(np.float32)
    weight_zero = full_range_codes(rng, weight_dtype, (12,)) if per_column else \
        np.array(np.iinfo(weight_dtype).min + 131, weight_dtype)
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(255, np.uint8), "w": weight, "ws": weight_scale,
             "wz": weight_zero, "ys": np.array(0.3, np.float32), "yz": np.array(0, np.uint8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    built = model(nodes, inits, 32, 12, input_type=TensorProto.UINT8, output_type=TensorProto.UINT8)
    x = full_range_codes(rng, np.uint8, (500, 32))
    golden, expected = undense.compile(built).run(x), onnxruntime_run(built, x).astype(np.int64)
    assert np.abs(golden - expected).max() <= 1
    assert np.abs(golden - expected).mean() < 0.01
    assert 0 < np.mean(golden == 0) < 1  # the implicit Relu of a zero point at the bottom of uint8


def lsb(compiled) -> float:
    """The step of the model's last quantized tensor: its output's, or where the model leaves its output
    unquantized after an activation (kept fine, FINE_OUTPUT_BITS), the step of that activation's input."""
    graph = compiled.graph
    if graph.quant[graph.output].bits == FINE_OUTPUT_BITS:
        return graph.quant[graph.nodes[-1].input].scale
    return graph.quant[graph.output].scale


ORT_QUANTIZED = {  # (activations, activation type, weight type)
    "relu removed, sigmoid between QDQ pairs": (["Relu", "Sigmoid"], "QUInt8", "QInt8"),
    "relu, relu, sigmoid, int8 activations": (["Relu", "Relu", "Sigmoid"], "QInt8", "QInt8"),
    "leaky relu, tanh, uint8 weights": (["LeakyRelu", "Tanh", None], "QUInt8", "QUInt8"),
    "relu, sigmoid, tanh left unquantized at the output": (["Relu", "Sigmoid", "Tanh"], "QUInt8", "QInt8"),
}


@pytest.mark.parametrize("case", list(ORT_QUANTIZED))
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("use_gemm", [True, False])
def test_onnxruntime_quantize_static_output_matches_onnxruntime(case, per_channel, use_gemm, tmp_path):
    """Models as onnxruntime's quantizer writes them, full 8-bit weights (no reduce_range): every output
    within 2 LSB of onnxruntime, and under a quarter of an LSB on average."""
    from onnxruntime.quantization import QuantType

    activations, activation_type, weight_type = ORT_QUANTIZED[case]
    widths = [16, 48, 40, 64][:len(activations) + 1]
    float_model = mlp(widths, activations, density=0.3, seed=3, use_gemm=use_gemm)
    rng = np.random.default_rng(4)
    qdq = onnxruntime_quantized(float_model, rng.normal(size=(128, 16)).astype(np.float32), tmp_path,
                                per_channel=per_channel, activation_type=QuantType[activation_type],
                                weight_type=QuantType[weight_type])
    compiled = undense.compile(qdq)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    error = np.abs(compiled.run(x) - onnxruntime_run(qdq, x)) / lsb(compiled)
    assert error.max() <= 2 + 1e-3 and error.mean() < 0.25, (error.max(), error.mean())


def test_quantizer_drops_relu_and_keeps_asymmetric_activations(tmp_path):
    """The issue's model: Gemm -> QDQ(uint8, zero point 0) -> Gemm -> QDQ(uint8, zero point > 0) -> Sigmoid
    -> QDQ(uint8, zero point 0). The quantizer removes the Relu (the clamp at zero point 0 is the Relu)."""
    from onnxruntime.quantization import QuantType

    rng = np.random.default_rng(4)
    qdq = onnxruntime_quantized(mlp([16, 48, 64], ["Relu", "Sigmoid"], density=0.3, seed=3),
                                rng.normal(size=(128, 16)).astype(np.float32), tmp_path, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    assert "Relu" not in [n.op_type for n in qdq.graph.node]
    zero_points = {t.name: int(onnx.numpy_helper.to_array(t)) for t in qdq.graph.initializer
                   if t.name.endswith("zero_point") and t.data_type == TensorProto.UINT8}
    assert zero_points["layer0_act_zero_point"] == 0 and zero_points["layer1_out_zero_point"] > 0
    compiled = undense.compile(qdq)
    first = compiled.graph.nodes[0]
    assert first.clamp == (0, 255) and compiled.graph.quant[first.output].zero_point == 0
    sigmoid = compiled.graph.nodes[-1]
    assert sigmoid.multiplier.tolist() == [1 << 14] * 64 and sigmoid.shift.tolist() == [14] * 64  # its table
    x = rng.normal(size=(1000, 16)).astype(np.float32)                                # is indexed by the codes
    error = np.abs(compiled.run(x) - onnxruntime_run(qdq, x)) / lsb(compiled)
    assert error.max() <= 1 + 1e-3 and error.mean() < 0.01


@pytest.mark.parametrize("axis", [0, -2, 1, -1])
def test_per_channel_weights_along_any_axis(axis):
    """A MatMul weight [in, out] dequantized per channel along either axis: per output channel its codes are
    kept as they are; per input channel they cannot be one multiplier per row, so they are quantized again."""
    rng = np.random.default_rng(13)
    codes = full_range_codes(rng, np.int8, (20, 8))
    scale = rng.uniform(0.005, 0.02, codes.shape[axis]).astype(np.float32)
    inits = {"w": codes, "ws": scale, "wz": np.zeros(codes.shape[axis], np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["weight"], name="dq", axis=axis),
             helper.make_node("MatMul", ["x", "weight"], ["y"], name="mm")]
    built = model(nodes, inits, 20, 8)
    x = rng.normal(size=(400, 20)).astype(np.float32)
    compiled = undense.compile(built, calibration=x)
    (layer,) = compiled.graph.nodes
    if axis % 2 == 1:
        np.testing.assert_array_equal(layer.dense_codes(), codes.T.astype(np.int64))
    expected = onnxruntime_run(built, x)
    assert np.abs(compiled.run(x) - expected).max() < 0.03 * np.abs(expected).max()


def test_alpha_scales_pre_quantized_weights():
    rng = np.random.default_rng(14)
    codes = full_range_codes(rng, np.int8, (6, 10))
    inits = {"w": codes, "ws": np.array(0.01, np.float32), "wz": np.array(0, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["weight"], name="dq"),
             helper.make_node("Gemm", ["x", "weight"], ["y"], name="gemm", transB=1, alpha=-0.5)]
    built = model(nodes, inits, 10, 6)
    x = rng.normal(size=(400, 10)).astype(np.float32)
    compiled = undense.compile(built, calibration=x)
    np.testing.assert_array_equal(compiled.graph.nodes[0].dense_codes(), -codes.astype(np.int64))
    expected = onnxruntime_run(built, x)
    assert np.abs(compiled.run(x) - expected).max() < 0.02 * np.abs(expected).max()
