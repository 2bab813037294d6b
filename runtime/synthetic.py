"""Synthetic sparse MLPs as ONNX, for benchmarks and tests: Gemm (or MatMul + Add) layers with activations."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def sparse_matrix(rng: np.random.Generator, rows: int, columns: int, density: float) -> np.ndarray:
    weight = rng.normal(0, 1 / np.sqrt(columns), (rows, columns))
    weight[rng.random((rows, columns)) >= density] = 0.0
    return weight.astype(np.float32)


def model(nodes, initializers, input_size, output_size, input_name="x", output_name="y", batch="batch",
          opset=OPSET, input_type=TensorProto.FLOAT, output_type=TensorProto.FLOAT, output_shape=None):
    """One input [batch, input_size], one output [batch, *output_shape]; checked with onnx.checker."""
    graph = helper.make_graph(
        nodes, "undense_synthetic",
        [helper.make_tensor_value_info(input_name, input_type, [batch, input_size])],
        [helper.make_tensor_value_info(output_name, output_type, [batch, *(output_shape or [output_size])])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(built)
    return built


def mlp(widths, activations, density=0.2, seed=0, use_gemm=True) -> onnx.ModelProto:
    """Layers `layer0`, `layer1`, ... of the given widths, each followed by its activation (None for none)."""
    rng = np.random.default_rng(seed)
    nodes, inits, current = [], {}, "x"
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        name = f"layer{index}"
        weight = sparse_matrix(rng, n_out, n_in, density)
        inits[f"{name}.weight"] = weight if use_gemm else weight.T.copy()
        inits[f"{name}.bias"] = rng.normal(0, 0.1, n_out).astype(np.float32)
        out = f"{name}_out"
        if use_gemm:
            nodes.append(helper.make_node("Gemm", [current, f"{name}.weight", f"{name}.bias"], [out],
                                          name=name, transB=1))
        else:
            nodes.append(helper.make_node("MatMul", [current, f"{name}.weight"], [f"{name}_mm"], name=f"{name}_matmul"))
            nodes.append(helper.make_node("Add", [f"{name}_mm", f"{name}.bias"], [out], name=f"{name}_add"))
        current = out
        activation = activations[index]
        if activation is not None:
            kwargs = {"alpha": 0.1} if activation == "LeakyRelu" else {}
            nodes.append(helper.make_node(activation, [current], [f"{name}_act"], name=f"{name}_{activation.lower()}",
                                          **kwargs))
            current = f"{name}_act"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="output"))
    return model(nodes, inits, widths[0], widths[-1])


def residual_block(width: int, density: float = 0.4, seed: int = 4) -> onnx.ModelProto:
    """y = fc2(relu(fc1(x))) + relu(fc1(x)): a fork, a skip connection and an Add."""
    rng = np.random.default_rng(seed)
    inits = {"w1": sparse_matrix(rng, width, width, density), "w2": sparse_matrix(rng, width, width, density)}
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["a1"], name="fc1_relu"),
             helper.make_node("Gemm", ["a1", "w2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Add", ["h2", "a1"], ["y"], name="residual")]
    return model(nodes, inits, width, width)


def onnxruntime_quantized(float_model: onnx.ModelProto, samples: np.ndarray, folder, **options) -> onnx.ModelProto:
    """`float_model` as onnxruntime's `quantize_static` writes it (QDQ format unless `quant_format` says
    otherwise), calibrated on `samples`; `options` go to quantize_static. `folder` holds its files."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self):
            self.items = iter({float_model.graph.input[0].name: sample[None]} for sample in samples)

        def get_next(self):
            return next(self.items, None)

    source, quantized = f"{folder}/float.onnx", f"{folder}/quantized.onnx"
    onnx.save(float_model, source)
    quantize_static(source, quantized, Samples(), **{"quant_format": QuantFormat.QDQ, **options})
    return onnx.load(quantized)


def integer_weights(rng: np.random.Generator, rows: int, columns: int, density: float = 0.3) -> np.ndarray:
    """int8 weight codes within +-127, mostly zero."""
    codes = rng.integers(-127, 128, size=(rows, columns)).astype(np.int8)
    codes[rng.random(codes.shape) >= density] = 0
    return codes


def matmul_integer(features: int = 24, outputs: int = 10, seed: int = 0) -> onnx.ModelProto:
    """uint8 codes in, MatMulInteger with int8 weights, the raw int32 accumulator out."""
    weight = integer_weights(np.random.default_rng(seed), features, outputs)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    return model(nodes, {"w": weight, "x_zero": np.array(131, np.uint8)}, features, outputs,
                 input_type=TensorProto.UINT8, output_type=TensorProto.INT32)


def qlinear_matmul(features: int = 24, outputs: int = 10, seed: int = 1) -> onnx.ModelProto:
    """uint8 codes in and out: one QLinearMatMul with int8 weights and a per-tensor weight scale."""
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8),
             "w": integer_weights(np.random.default_rng(seed), features, outputs),
             "ws": np.array(0.004, np.float32), "wz": np.array(0, np.int8), "ys": np.array(0.05, np.float32),
             "yz": np.array(120, np.uint8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    return model(nodes, inits, features, outputs, input_type=TensorProto.UINT8, output_type=TensorProto.UINT8)


def qdq_mlp(widths=(12, 24, 10), seed: int = 5) -> onnx.ModelProto:
    """A float model in QDQ form, as onnxruntime's quantize_static writes it: each layer's input quantized to
    uint8 per tensor, int8 weight codes with one scale per output channel, int32 bias codes, ReLU between."""
    rng = np.random.default_rng(seed)
    nodes, inits, current, scale = [], {}, "x", 0.03
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        name = f"layer{index}"
        inits[f"{name}.x_scale"], inits[f"{name}.x_zero"] = np.array(scale, np.float32), np.array(128, np.uint8)
        codes = integer_weights(rng, n_in, n_out, 0.4)  # [in, out]: MatMul's layout
        weight_scales = rng.uniform(0.002, 0.01, n_out).astype(np.float32)
        inits[f"{name}.w"], inits[f"{name}.w_scale"] = codes, weight_scales
        inits[f"{name}.w_zero"] = np.zeros(n_out, np.int8)
        inits[f"{name}.b"] = rng.integers(-200, 200, n_out).astype(np.int32)
        inits[f"{name}.b_scale"] = (scale * weight_scales).astype(np.float32)
        inits[f"{name}.b_zero"] = np.zeros(n_out, np.int32)
        nodes += [
            helper.make_node("QuantizeLinear", [current, f"{name}.x_scale", f"{name}.x_zero"], [f"{name}_q"],
                             name=f"{name}_quant"),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}.x_scale", f"{name}.x_zero"], [f"{name}_x"],
                             name=f"{name}_dequant"),
            helper.make_node("DequantizeLinear", [f"{name}.w", f"{name}.w_scale", f"{name}.w_zero"], [f"{name}_w"],
                             name=f"{name}_weight", axis=1),
            helper.make_node("DequantizeLinear", [f"{name}.b", f"{name}.b_scale", f"{name}.b_zero"], [f"{name}_b"],
                             name=f"{name}_bias", axis=0),
            helper.make_node("MatMul", [f"{name}_x", f"{name}_w"], [f"{name}_mm"], name=f"{name}_matmul"),
            helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [f"{name}_out"], name=f"{name}_add"),
            helper.make_node("Relu", [f"{name}_out"], [f"{name}_relu"], name=f"{name}_relu"),
        ]
        current, scale = f"{name}_relu", scale * 2
    inits["y_scale"], inits["y_zero"] = np.array(scale, np.float32), np.array(0, np.uint8)
    nodes += [helper.make_node("QuantizeLinear", [current, "y_scale", "y_zero"], ["y_q"], name="output_quant"),
              helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["y"], name="output_dequant")]
    return model(nodes, inits, widths[0], widths[-1])


def assorted_ops(seed: int = 2) -> onnx.ModelProto:
    """Most of what the frontend maps in one model: a folded Constant + Transpose weight, Gemm, BatchNormalization,
    Clip, Mul by a constant, a residual Add, Reshape and Flatten."""
    rng = np.random.default_rng(seed)
    inits = {
        "b1": rng.normal(size=8).astype(np.float32), "gamma": rng.uniform(0.5, 2, 8).astype(np.float32),
        "beta": rng.normal(size=8).astype(np.float32), "mean": rng.normal(size=8).astype(np.float32),
        "var": rng.uniform(0.5, 2, 8).astype(np.float32), "w2": sparse_matrix(rng, 8, 8, 0.5),
        "half": np.array(0.5, np.float32), "lo": np.array(-0.5, np.float32), "hi": np.array(1.5, np.float32),
        "shape": np.array([-1, 2, 4], np.int64),
    }
    nodes = [
        helper.make_node("Constant", [], ["w1_t"], name="w1_t", value=numpy_helper.from_array(
            sparse_matrix(rng, 8, 5, 0.5).T.copy())),
        helper.make_node("Transpose", ["w1_t"], ["w1"], name="w1", perm=[1, 0]),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("BatchNormalization", ["h1", "gamma", "beta", "mean", "var"], ["bn"], name="bn1"),
        helper.make_node("Clip", ["bn", "lo", "hi"], ["a1"], name="clip1"),
        helper.make_node("Gemm", ["a1", "w2"], ["h2"], name="fc2", transB=1),
        helper.make_node("Mul", ["h2", "half"], ["m2"], name="scale2"),
        helper.make_node("Add", ["m2", "a1"], ["res"], name="residual"),
        helper.make_node("Reshape", ["res", "shape"], ["r"], name="to_grid"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
        helper.make_node("Reshape", ["f", "shape"], ["y"], name="grid"),
    ]
    return model(nodes, inits, 5, None, output_shape=[2, 4])


def topk_with_two_outputs() -> onnx.ModelProto:
    """An unsupported op (TopK) that also gives the graph two outputs: the op is what a user must hear of."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("TopK", ["r", "k"], ["values", "indices"], name="top3")]
    graph = helper.make_graph(nodes, "topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 8])],
                              [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["b", 3]),
                               helper.make_tensor_value_info("indices", TensorProto.INT64, ["b", 3])],
                              [numpy_helper.from_array(np.array([3], np.int64), "k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
