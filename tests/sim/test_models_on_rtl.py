"""Every kind of model the compiler accepts also runs on the RTL, bit-exact (bulk simulation on Verilator)."""
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import undense
from undense.compiler import activity
from undense.runtime.synthetic import mlp, model, onnxruntime_quantized

EXPORTED = Path(__file__).parents[1] / "compiler" / "exported"
CONV_MODELS = Path(__file__).parents[1] / "compiler" / "conv_models.py"


def conv_models():
    """tests/compiler/conv_models.py: hand-built convolutional graphs."""
    spec = importlib.util.spec_from_file_location("conv_models", CONV_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hand_built(build, in_shape):
    """A hand-built convolution compiled on normal inputs."""
    return lambda folder: undense.compile(build(conv_models()),
                                          calibration=np.random.default_rng(0).normal(size=(64, *in_shape)))


def exported_conv_decoder(name, quantized=False):
    """The torch-exported conv decoder (tests/compiler/exported): Linear, ConvTranspose + BatchNorm + LeakyReLU,
    a residual conv block, nearest Upsample + Conv, Sigmoid; or onnxruntime's quantize_static of it (QDQ)."""
    def compiled(folder):
        x = np.random.default_rng(0).normal(size=(200, 10)).astype(np.float32)
        built = onnx.load(str(EXPORTED / name))
        if quantized:
            built = onnxruntime_quantized(built, x[:100], folder, per_channel=True)
        return undense.compile(built, calibration=x)
    return compiled


def integer_weights(seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, size=(24, 10)).astype(np.int8)
    weight[rng.random(weight.shape) < 0.7] = 0
    return weight


def matmul_integer():
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    return model(nodes, {"w": integer_weights(), "x_zero": np.array(131, np.uint8)}, 24, 10,
                 input_type=TensorProto.UINT8, output_type=TensorProto.INT32)


def qlinear_matmul():
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8), "w": integer_weights(1),
             "ws": np.array(0.004, np.float32), "wz": np.array(0, np.int8), "ys": np.array(0.05, np.float32),
             "yz": np.array(120, np.uint8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    return model(nodes, inits, 24, 10, input_type=TensorProto.UINT8, output_type=TensorProto.UINT8)


def full_range_matmul_integer():
    """uint8 weights over their whole range less a zero point per column: 9-bit weight codes."""
    rng = np.random.default_rng(5)
    weight = rng.integers(0, 256, size=(24, 10)).astype(np.uint8)
    weight[0, :2] = [0, 255]
    zero = rng.integers(0, 256, 10).astype(np.uint8)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero", "w_zero"], ["y"], name="mmi")]
    return model(nodes, {"w": weight, "x_zero": np.array(255, np.uint8), "w_zero": zero}, 24, 10,
                 input_type=TensorProto.UINT8, output_type=TensorProto.INT32)


def full_range_qlinear_matmul():
    """int8 weights reaching -128 with zero points per column, an int8 input with zero point -128."""
    rng = np.random.default_rng(6)
    weight = rng.integers(-128, 128, size=(24, 10)).astype(np.int8)
    weight[0, :2] = [-128, 127]
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(-128, np.int8), "w": weight,
             "ws": rng.uniform(0.001, 0.004, 10).astype(np.float32), "wz": rng.integers(-128, 128, 10).astype(np.int8),
             "ys": np.array(0.2, np.float32), "yz": np.array(-3, np.int8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    return model(nodes, inits, 24, 10, input_type=TensorProto.INT8, output_type=TensorProto.INT8)


def onnxruntime_qdq(folder):
    """onnxruntime's quantize_static output: uint8 weights (9-bit codes less their zero points), the Relu
    dropped, a Sigmoid between QDQ pairs, and a Tanh the model leaves unquantized at its output (16 bits)."""
    from onnxruntime.quantization import QuantType

    float_model = mlp([16, 24, 20, 12], ["Relu", "Sigmoid", "Tanh"], density=0.3, seed=3)
    samples = np.random.default_rng(4).normal(size=(64, 16)).astype(np.float32)
    return onnxruntime_quantized(float_model, samples, folder, per_channel=True, activation_type=QuantType.QUInt8,
                                 weight_type=QuantType.QUInt8)


CASES = {
    "residual (torch legacy export)": lambda folder: undense.compile(
        EXPORTED / "legacy_batchnorm.onnx", calibration=np.random.default_rng(0).normal(size=(200, 12))),
    "MatMulInteger (raw int32 accumulator out)": lambda folder: undense.compile(matmul_integer()),
    "QLinearMatMul (uint8 in and out)": lambda folder: undense.compile(qlinear_matmul()),
    "MatMulInteger (uint8 weights, zero points per column)": lambda folder: undense.compile(
        full_range_matmul_integer()),
    "QLinearMatMul (int8 weights reaching -128, zero points)": lambda folder: undense.compile(
        full_range_qlinear_matmul()),
    "onnxruntime quantize_static (QDQ)": lambda folder: undense.compile(onnxruntime_qdq(folder)),
    "Conv 3x3, pads 1": hand_built(lambda c: c.conv((3, 8, 8), 4, (3, 3), pads=(1, 1, 1, 1)), (3, 8, 8)),
    "depthwise Conv, two per channel, LeakyRelu": hand_built(
        lambda c: c.conv((3, 6, 6), 6, (3, 3), group=3, activation="LeakyRelu"), (3, 6, 6)),
    "ConvTranspose output_padding, asymmetric pads, Sigmoid": hand_built(
        lambda c: c.conv((4, 5, 4), 3, (3, 3), strides=(2, 3), pads=(1, 0, 0, 2), transposed=True,
                         output_padding=(1, 2), activation="Sigmoid"), (4, 5, 4)),
    "Upsample x3 + Conv + BatchNormalization": hand_built(
        lambda c: c.upsample_conv((3, 4, 5), 4, 3, coordinate_mode="half_pixel", nearest_mode="round_prefer_floor",
                                  through_batchnorm=True), (3, 4, 5)),
    "conv decoder, residual block (torch dynamo export, external data)": exported_conv_decoder(
        "conv_dynamo_external.onnx"),
    "conv decoder (torch legacy export)": exported_conv_decoder("conv_legacy.onnx"),
    "conv decoder, onnxruntime quantize_static (QDQ)": exported_conv_decoder("conv_dynamo_external.onnx", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_runs_bit_exact_on_rtl(case, tmp_path):
    compiled = CASES[case](tmp_path).save(tmp_path / "build")
    x = compiled.random_inputs(25, seed=3)
    result = compiled.simulate(x)
    assert result.report["mismatches"] == 0, result.report.get("first_mismatch")
    assert result.report["event_mismatches"] == []
    np.testing.assert_array_equal(compiled.run(x, backend="rtl"), compiled.run(x, backend="golden"))


def test_28x28_generator_on_rtl_bit_exact_at_the_predicted_cycles(tmp_path):
    """The bundled convolutional generator (Linear, ConvTranspose 4x4/2 + BatchNorm + ReLU, Upsample x2 + Conv
    5x5 + Sigmoid) on the RTL as folded for the 85F: bit-exact, its counters as golden predicts, and its cycles
    per image within 10% of the fold's prediction."""
    digits28 = Path(__file__).parents[2] / "models" / "digits28"
    compiled = undense.compile(digits28 / "generator.onnx", tmp_path / "build", target_name="ecp5-85k")
    result = compiled.simulate(compiled.random_inputs(48, seed=5))
    report = result.report
    assert report["mismatches"] == 0 and report["event_mismatches"] == []
    assert report["steady_state"]
    assert abs(report["cycles_per_image"] / report["predicted_cycles_per_image"] - 1) < 0.10


@pytest.mark.parametrize("target", ["ecp5-25k", "ecp5-85k"])
def test_a_chain_of_convolutions_through_rolling_windows(target, tmp_path):
    """Convolutions that read maps row by row (ConvTranspose, then 3x3, depthwise and 1x1 Conv: hw/conv_unit.py)
    accumulate in rolling windows, each folded as the target allows: bit-exact, the counters as golden predicts
    (each row's end sent though zero), the cycles within 10% of the prediction."""
    x = np.random.default_rng(0).normal(size=(64, 3, 4, 5)).astype(np.float32)
    compiled = undense.compile(conv_models().conv_chain(), tmp_path / "build", calibration=x, target_name=target)
    graph = compiled.graph
    windowed = [node.name for node in graph.nodes if activity.windowed(graph, node, activity.tensor_lanes(graph))]
    assert "conv" in windowed
    result = compiled.simulate(compiled.random_inputs(40, seed=2))
    report = result.report
    assert report["mismatches"] == 0, report.get("first_mismatch")
    assert report["event_mismatches"] == []
    assert abs(report["cycles_per_image"] / report["predicted_cycles_per_image"] - 1) < 0.10
