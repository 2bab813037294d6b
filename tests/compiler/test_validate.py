"""Damaged numbers at import (compiler/validate.py): one UndenseError naming the tensor and the node that reads it."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import undense
from undense.compiler.frontend import import_onnx
from undense.errors import UndenseError
from undense.runtime.synthetic import mlp, model, qdq_mlp, qlinear_matmul, sparse_matrix


def replaced(built: onnx.ModelProto, name: str, values=None, tensor: TensorProto | None = None) -> onnx.ModelProto:
    """The model with initializer `name` replaced by `values` (same dtype) or by a whole TensorProto."""
    for stored in built.graph.initializer:
        if stored.name == name:
            if tensor is None:
                dtype = numpy_helper.to_array(stored).dtype
                tensor = numpy_helper.from_array(np.asarray(values, dtype=dtype), name)
            stored.CopyFrom(tensor)
            return built
    raise KeyError(name)


def refused(built, *expected) -> str:
    with pytest.raises(UndenseError) as error:
        import_onnx(built)
    message = str(error.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message
    return message


def weight_with(value) -> onnx.ModelProto:
    built = mlp([6, 8, 4], ["Relu", None])
    weight = numpy_helper.to_array(built.graph.initializer[0]).copy()
    weight[1, 2] = value
    return replaced(built, "layer0.weight", weight)


@pytest.mark.parametrize("value, found", [(np.nan, "1 NaN and 0 infinite"), (np.inf, "0 NaN and 1 infinite"),
                                          (-np.inf, "0 NaN and 1 infinite")])
def test_nan_or_infinite_weight(value, found):
    refused(weight_with(value), "node 'layer0' (Gemm)", "input B 'layer0.weight'", found, "export the model again")


@pytest.mark.parametrize("value", [0.0, -0.004, np.nan, np.inf])
@pytest.mark.parametrize("name", ["xs", "ws", "ys"])
def test_scale_that_is_not_positive_and_finite(name, value):
    refused(replaced(qlinear_matmul(), name, value), "node 'qmm' (QLinearMatMul)", f"scale '{name}'",
            "positive finite")


def test_scale_of_a_qdq_weight():
    refused(replaced(qdq_mlp(), "layer1.w_scale", np.zeros(10)), "node 'layer1_weight' (DequantizeLinear)",
            "scale 'layer1.w_scale' is 0")


@pytest.mark.parametrize("data_type, expected", [(39, "data type 39, which ONNX does not define"),
                                                 (0, "data type 0"),
                                                 (TensorProto.STRING, "of type STRING, which undense does not read"),
                                                 (TensorProto.FLOAT8E4M3FN, "of type FLOAT8E4M3FN")])
def test_unknown_or_unsupported_data_type(data_type, expected):
    built = mlp([6, 8, 4], ["Relu", None])
    built.graph.initializer[1].data_type = data_type
    refused(built, "node 'layer0' (Gemm)", "input C 'layer0.bias'", expected)


def test_data_shorter_than_its_shape():
    built = mlp([6, 8, 4], ["Relu", None])
    built.graph.initializer[0].dims[0] = 9
    refused(built, "input B 'layer0.weight'", "cannot be read as FLOAT of shape 9x6", "export the model again")


def test_zero_point_outside_its_type():
    point = TensorProto(name="xz", data_type=TensorProto.UINT8)
    point.int32_data.append(300)  # ONNX stores uint8 widened; onnx itself would wrap it to 44
    refused(replaced(qlinear_matmul(), "xz", tensor=point), "node 'qmm' (QLinearMatMul)", "'xz'",
            "holds 300, which a UINT8 cannot represent")


def test_zero_point_of_another_type_than_its_codes():
    refused(replaced(qlinear_matmul(), "wz", tensor=numpy_helper.from_array(np.array(0, np.uint8), "wz")),
            "node 'qmm' (QLinearMatMul)", "zero point 'wz' is UINT8 but the codes 'w' it goes with are INT8")


def test_name_that_is_not_text():
    built = mlp([6, 8, 4], ["Relu", None])
    data = built.SerializeToString().replace(b"layer0_relu", b"layer0\xffrelu")
    refused(onnx.load_from_string(data), "not UTF-8 text")


def test_a_damaged_tensor_no_node_reads_is_harmless():
    built = mlp([6, 8, 4], ["Relu", None])
    built.graph.initializer.append(numpy_helper.from_array(np.array([np.nan], np.float32), "unused"))
    import_onnx(built)


def test_clip_bounds_may_be_infinite_on_their_own_side_only():
    def clipped(low, high):
        nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
                 helper.make_node("Clip", ["h", "lo", "hi"], ["y"], name="clip")]
        inits = {"w": sparse_matrix(np.random.default_rng(0), 4, 4, 0.5), "lo": np.array(low, np.float32),
                 "hi": np.array(high, np.float32)}
        return model(nodes, inits, 4, 4)

    import_onnx(clipped(-np.inf, np.inf))
    refused(clipped(-1.0, -np.inf), "node 'clip' (Clip)", "input max 'hi'", "1 infinite")
    refused(clipped(np.inf, 1.0), "input min 'lo'")


def test_numbers_computed_at_import_are_checked_too():
    """A negative variance passes as a number but folds into a NaN scale: named by the layer it lands in."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], name="bn")]
    inits = {"w": sparse_matrix(rng, 4, 4, 0.5), "g": np.ones(4, np.float32), "b": np.zeros(4, np.float32),
             "m": np.zeros(4, np.float32), "v": np.array([1, 1, -2, 1], np.float32)}
    refused(model(nodes, inits, 4, 4), "layer 'bn'", "NaN or infinite after import", "variance")


def test_scales_too_far_apart_for_fixed_point_name_the_layer():
    built = replaced(qlinear_matmul(), "ys", 1e-9)  # multiplier 0.02 * 0.004 / 1e-9 = 80,000 > 2^14
    with pytest.raises(UndenseError, match="layer 'qmm': the input scale times the weight scale over the output "
                                           "scale is 8e"):
        undense.compile(built)
