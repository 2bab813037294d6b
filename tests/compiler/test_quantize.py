import numpy as np
import pytest

from undense.compiler.frontend import import_onnx
from undense.compiler.golden import run
from undense.compiler.ir import QDense
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import quantize
from undense.compiler.reference import run_float
from undense.compiler.verify import verify
from undense.errors import UndenseError
from undense.runtime.synthetic import mlp


def float_graph(activations=("Relu", "Sigmoid"), seed=0):
    return fuse(import_onnx(mlp([8, 16, 6], list(activations), density=0.4, seed=seed)))


def calibration(seed=5, count=300):
    return np.random.default_rng(seed).normal(size=(count, 8))


def test_weights_are_symmetric_per_output_channel():
    graph = float_graph()
    qgraph = quantize(graph, calibration(), bits=6)
    verify(qgraph, "quantize")
    for float_node, node in zip(graph.nodes, qgraph.nodes, strict=True):
        codes = node.dense_codes()
        assert np.abs(codes).max(axis=1).tolist() == [31] * codes.shape[0]  # every row reaches +-(2^5 - 1)
        assert np.array_equal(codes == 0, float_node.weight == 0)


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_quantized_graph_stays_close_to_the_float_graph(bits):
    graph, x = float_graph(), calibration()
    qgraph = quantize(graph, x, bits=bits)
    expected = run_float(graph, x)[0][graph.output]
    error = np.abs(run(qgraph, x) - expected)
    output_step = qgraph.quant[qgraph.output].scale
    assert error.mean() < 2 * output_step * 2 ** (8 - bits)
    assert error.max() < 0.25 * np.ptp(expected)


def test_relu_is_a_clamp_and_sigmoid_a_table():
    qgraph = quantize(float_graph(), calibration(), bits=8)
    relu, sigmoid = qgraph.nodes
    assert relu.table is None and relu.clamp[0] == qgraph.quant[relu.output].zero_point
    assert sigmoid.table is not None and len(sigmoid.table) == 256
    assert np.all(np.diff(sigmoid.table) >= 0)  # a monotonic function gives a monotonic table


def test_per_layer_bits():
    graph = float_graph()
    qgraph = quantize(graph, calibration(), bits=8, layer_bits={graph.nodes[0].name: 3})
    first, second = qgraph.nodes
    assert (first.weight_bits, qgraph.quant[first.output].bits) == (3, 3)
    assert (second.weight_bits, qgraph.quant[second.output].bits) == (8, 8)
    assert isinstance(first, QDense) and np.abs(first.dense_codes()).max() <= 3


def test_accumulator_width_bounds_every_input():
    qgraph = quantize(float_graph(), calibration(), bits=8)
    for node in qgraph.nodes:
        q_in = qgraph.quant[node.input]
        worst = np.where(node.dense_codes() > 0, q_in.qmax, q_in.qmin)  # the input codes that maximise acc
        acc = (node.dense_codes() * worst).sum(axis=1) + node.bias
        assert np.abs(acc).max() < 2 ** (node.acc_bits - 1)


@pytest.mark.parametrize("bits,layer_bits", [(9, {}), (1, {}), (8, {"nonexistent": 4}), (8, {"layer0": 12})])
def test_bad_bit_widths_are_refused(bits, layer_bits):
    with pytest.raises(UndenseError):
        quantize(float_graph(), calibration(), bits=bits, layer_bits=layer_bits)


def test_calibration_of_the_wrong_width_is_refused():
    with pytest.raises(UndenseError, match="8 features per sample"):
        quantize(float_graph(), np.zeros((10, 5)))


def test_a_row_of_tiny_weights_beside_a_bias_keeps_its_bias_in_range():
    """A row whose largest weight is 1e-30 would get a step so fine that its bias overflowed int64; its step
    is floored instead, so its weights quantize to zero and the bias carries the row, as in the float model."""
    graph = float_graph(("Relu", None))
    first = graph.nodes[0]
    weight = first.weight.copy()
    weight[3] = np.where(weight[3] != 0, 1e-30, 0.0)
    tiny = graph.with_nodes([type(first)(first.name, first.input, first.output, weight, first.bias + 0.5,
                                         first.activation), *graph.nodes[1:]])
    qgraph = quantize(tiny, calibration())
    verify(qgraph, "quantize")
    assert not qgraph.nodes[0].dense_codes()[3].any()
    x = calibration(seed=6, count=100)
    float_out = run_float(tiny, x)[0][tiny.output]
    assert np.abs(run(qgraph, x) - float_out).max() < 0.1


def test_a_bias_beyond_int32_steps_of_fixed_scales_names_the_layer():
    from onnx import helper

    from undense.runtime.synthetic import model

    codes = np.array([[3, -128], [127, 5]], np.int8)
    inits = {"w": codes, "ws": np.array(1e-30, np.float32), "wz": np.array(0, np.int8),
             "b": np.array([0.5, -0.5], np.float32)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["weight"], name="dq"),
             helper.make_node("Gemm", ["x", "weight", "b"], ["y"], name="tiny_gemm", transB=1)]
    with pytest.raises(UndenseError, match="layer 'tiny_gemm': its bias .* beyond an int32"):
        quantize(fuse(import_onnx(model(nodes, inits, 2, 2))), np.ones((4, 2)))
