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
