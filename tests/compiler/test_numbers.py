import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from undense.compiler.numbers import (
    MULTIPLIER_BITS,
    QuantParams,
    activation_params,
    fixed_point,
    rshift_round,
    signed_bits,
)
from undense.runtime.synthetic import model


@pytest.mark.parametrize("signed", [True, False])
def test_quantize_is_onnx_quantize_linear(signed):
    """Round half to even, then saturate, exactly as onnxruntime's QuantizeLinear."""
    params = QuantParams(0.5, -3 if signed else 7, 8, signed)
    zp_type = TensorProto.INT8 if signed else TensorProto.UINT8
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")]
    built = model(nodes, {"s": np.array(0.5, np.float32),
                          "z": np.array(params.zero_point, np.int8 if signed else np.uint8)}, 9, 9, output_type=zp_type)
    x = np.array([[-200.0, -1.25, -0.75, -0.25, 0.25, 0.75, 1.25, 2.5, 200.0]], dtype=np.float32)
    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(params.quantize(x), session.run(None, {"x": x})[0])


def test_activation_params_cover_the_range_and_zero():
    params = activation_params(-1.0, 3.0, 8)
    assert params.dequantize(params.quantize(0.0)) == 0.0
    assert abs(params.dequantize(params.qmin) - -1.0) <= params.scale
    assert abs(params.dequantize(params.qmax) - 3.0) <= params.scale


@given(st.floats(min_value=1e-6, max_value=1000.0))
def test_fixed_point_keeps_fifteen_significant_bits(multiplier):
    mantissa, shift = fixed_point(np.array([multiplier]))
    assert 1 << (MULTIPLIER_BITS - 1) <= mantissa[0] < 1 << MULTIPLIER_BITS
    assert shift[0] >= 1
    assert abs(mantissa[0] / 2.0 ** shift[0] - multiplier) <= multiplier * 2.0 ** -MULTIPLIER_BITS


@pytest.mark.parametrize("shift", [1, 2, 5, 31])
def test_rshift_rounds_half_to_even_as_quantize_linear(shift):
    values = np.concatenate([np.arange(-70, 71), np.arange(-9, 10) << shift, (np.arange(-9, 10) << shift) + 1,
                             ((np.arange(-19, 20, 2)) << (shift - 1)) - 1])
    np.testing.assert_array_equal(rshift_round(values, shift), np.rint(values / 2.0 ** shift).astype(np.int64))
    ties = np.array([-5, -3, -1, 1, 3, 5]) << (shift - 1)  # -2.5 -1.5 -0.5 0.5 1.5 2.5
    assert rshift_round(ties, shift).tolist() == [-2, -2, 0, 0, 2, 2]


def test_signed_bits():
    assert signed_bits(-128, 127) == 8
    assert signed_bits(-129, 0) == 9
    assert signed_bits(0, 128) == 9
