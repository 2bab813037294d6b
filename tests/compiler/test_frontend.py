"""ONNX import: every supported op maps to the IR and computes what onnxruntime computes."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from undense.compiler.frontend import import_onnx
from undense.compiler.ir import Add, Dense
from undense.compiler.reference import run_float
from undense.errors import UndenseError
from undense.runtime.synthetic import OPSET, assorted_ops, mlp, model, sparse_matrix, topk_with_two_outputs


def onnxruntime_output(built: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_imports_faithfully(built: onnx.ModelProto, input_size: int):
    x = np.random.default_rng(1).normal(size=(7, input_size)).astype(np.float32)
    graph = import_onnx(built)
    values, _ = run_float(graph, x)
    expected = onnxruntime_output(built, x)
    np.testing.assert_allclose(values[graph.output].reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
    return graph


@pytest.mark.parametrize("activation", ["Relu", "LeakyRelu", "Sigmoid", "Tanh", None])
@pytest.mark.parametrize("use_gemm", [True, False])
def test_mlp_layers(activation, use_gemm):
    graph = assert_imports_faithfully(mlp([6, 10, 4], [activation, None], use_gemm=use_gemm), 6)
    assert all(isinstance(n, Dense) for n in graph.nodes)


def test_bundled_generator(generator_path):
    graph = assert_imports_faithfully(onnx.load(str(generator_path)), 16)
    assert graph.output_shape == (64,)


def test_clip_batchnorm_mul_reshape_flatten_residual():
    graph = assert_imports_faithfully(assorted_ops(), 5)
    assert any(isinstance(n, Add) for n in graph.nodes)
    assert graph.output_shape == (2, 4)


def test_constant_subgraphs_are_folded():
    rng = np.random.default_rng(3)
    weight = sparse_matrix(rng, 4, 6, 0.5)
    nodes = [
        helper.make_node("Constant", [], ["w_t"], value=onnx.numpy_helper.from_array(weight.T.copy())),
        helper.make_node("Transpose", ["w_t"], ["w"], perm=[1, 0]),
        helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1),
    ]
    assert_imports_faithfully(model(nodes, {}, 6, 4), 6)


# -- rejections: one message naming the node, its op, why, and what to do -------------------------

def rejected(built, *expected):
    with pytest.raises(UndenseError) as error:
        import_onnx(built)
    message = str(error.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message
    return message


def test_unsupported_op_is_named_with_the_supported_list():
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="probabilities")]
    rejected(model(nodes, {}, 4, 4), "'probabilities'", "Softmax", "unsupported op", "Gemm")


def test_dynamic_feature_dimension():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "dyn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "features"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "features"])])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    rejected(built, "'x'", "dynamic dimension 'features'", "only the batch dimension")


def test_unsupported_attribute():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transA=1)]
    built = model(nodes, {"w": sparse_matrix(rng, 4, 4, 0.5)}, 4, 4, batch=4)
    rejected(built, "'fc'", "Gemm", "transA")


def test_old_opset():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    rejected(model(nodes, {}, 4, 4, opset=11), "opset 11", "convert_version")


def test_weight_that_is_not_a_constant():
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="mm"),
             helper.make_node("Relu", ["x"], ["x2"], name="r")]
    built = model([nodes[1], nodes[0]], {}, 4, 4, batch=4)
    rejected(built, "'mm'", "MatMul", "must be a constant")


def test_product_of_two_activations():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Mul", ["x", "a"], ["y"], name="gate")]
    rejected(model(nodes, {}, 4, 4), "'gate'", "Mul", "only Mul by a constant")


def test_truncated_and_missing_files(tmp_path, generator_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(generator_path.read_bytes()[:5000])
    message = rejected(truncated, "truncated.onnx")
    assert "truncated" in message or "not a readable" in message
    rejected(tmp_path / "absent.onnx", "absent.onnx", "no such file")


def test_broken_graph_fails_the_checker():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "broken", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])  # "w" is never defined
    rejected(built, "onnx.checker")


def test_unknown_input_shape():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "unknown",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    rejected(built, "graph input 'x'", "an unknown dimension", "only the batch dimension")


def test_per_channel_activation_quantization():
    inits = {"s": np.array([0.1, 0.2, 0.1, 0.1], np.float32), "z": np.zeros(4, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant_in", axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant_in", axis=1)]
    rejected(model(nodes, inits, 4, 4), "'quant_in'", "QuantizeLinear", "per tensor")


def test_unsupported_op_is_named_before_the_graph_structure():
    """TopK gives two outputs, so the graph has two; the user must hear that TopK is not supported."""
    message = rejected(topk_with_two_outputs(), "'top3'", "TopK", "unsupported op")
    assert "one output" not in message


def test_ops_computed_at_import_are_not_unsupported():
    """A Transpose of a dequantized weight is folded at import, so the op check lets it through."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.integers(-100, 100, (4, 6)).astype(np.int8), "ws": np.array(0.01, np.float32),
             "wz": np.array(0, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq"),
             helper.make_node("Transpose", ["wd"], ["wt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm")]
    graph = import_onnx(model(nodes, inits, 6, 4))
    np.testing.assert_allclose(graph.nodes[0].weight, inits["w"] * 0.01, rtol=1e-6)


def test_opset_newer_than_onnx_knows():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    rejected(model(nodes, {}, 4, 4, opset=99), "opset 99", "the installed onnx does not define")


def test_bias_of_another_size_than_the_outputs():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)]
    built = model(nodes, {"w": sparse_matrix(rng, 4, 6, 0.5), "b": np.ones(3, np.float32)}, 6, 4)
    rejected(built, "'fc'", "3 bias values for 4 outputs")


@pytest.mark.parametrize("bounds, accepted", [((1,), True), ((2,), False)])
def test_clip_bounds_are_one_number_each(bounds, accepted):
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")]
    inits = {"lo": np.full(bounds, -0.5, np.float32), "hi": np.full(bounds, 0.5, np.float32)}
    built = model(nodes, inits, 4, 4)
    if accepted:
        assert_imports_faithfully(built, 4)
    else:
        rejected(built, "'clip'", "Clip bounds of 2 and 2 values")


def test_per_channel_constants_of_the_wrong_size():
    from undense.runtime.synthetic import qdq_mlp

    def changed(name, values, axis=None):
        built = qdq_mlp()
        for tensor in built.graph.initializer:
            if tensor.name == name:
                tensor.CopyFrom(onnx.numpy_helper.from_array(values, name))
        for node in built.graph.node:
            if node.name == "layer1_weight" and axis is not None:
                node.attribute[0].i = axis
        return built

    rejected(changed("layer1.w_zero", np.zeros(4, np.int8)), "'layer1_weight'", "DequantizeLinear",
             "zero point has 4 values for 10 channels along axis 1")
    rejected(changed("layer1.w_scale", np.full(10, 0.01, np.float32), axis=0), "'layer1_weight'",
             "scale has 10 values for 24 channels along axis 0")


def test_onnxruntime_qoperator_and_dynamic_quantization_are_refused_with_what_to_do(tmp_path):
    from onnxruntime.quantization import QuantFormat, quantize_dynamic

    from undense.runtime.synthetic import onnxruntime_quantized

    float_model = mlp([16, 32, 8], ["Relu", None], seed=1, use_gemm=False)
    samples = np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32)
    qoperator = onnxruntime_quantized(float_model, samples, tmp_path, quant_format=QuantFormat.QOperator)
    rejected(qoperator, "operator domain 'com.microsoft'", "quant_format=QuantFormat.QDQ")
    onnx.save(float_model, tmp_path / "float_for_dynamic.onnx")
    quantize_dynamic(str(tmp_path / "float_for_dynamic.onnx"), str(tmp_path / "dynamic.onnx"))
    rejected(onnx.load(str(tmp_path / "dynamic.onnx")), "(DynamicQuantizeLinear)", "quantize statically")
