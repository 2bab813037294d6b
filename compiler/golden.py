"""The golden executor: the quantized graph in numpy integer arithmetic, the exact bits of the hardware.

It defines the bits; the RTL follows it. One function per op, each stating
its rounding; the shared rule is numbers.rshift_round (half to even, as ONNX QuantizeLinear).
"""
import numpy as np

from undense.compiler.ir import QAdd, QDense, QGraph, SparseRows
from undense.compiler.numbers import rshift_round


def dense(node: QDense, x: np.ndarray) -> np.ndarray:
    """acc = W x + bias (exact, int64); pre = clamp(zp + rshift_round(acc * M, s)); out = table[pre] or pre.

    Without a multiplier (MatMulInteger) the output is acc itself.
    """
    weight = node.weight.csr() if isinstance(node.weight, SparseRows) else node.weight
    acc = x @ weight.T + node.bias
    if node.multiplier is None:
        return acc
    pre = node.requant.zero_point + rshift_round(acc * node.multiplier, node.shift)
    pre = np.clip(pre, *node.clamp)
    return node.table[pre - node.requant.qmin] if node.table is not None else pre


def add(node: QAdd, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out = clamp(zp + rshift_round((a - za) * Ma + (b - zb) * Mb, s)) over the output's code range."""
    (za, zb), (ma, mb) = node.zero_points, node.multipliers
    total = (a - za) * ma + (b - zb) * mb
    return np.clip(node.requant.zero_point + rshift_round(total, node.shift), node.requant.qmin, node.requant.qmax)


def run_codes(graph: QGraph, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor's integer codes for a batch of input codes (N, features)."""
    values = {graph.input: np.asarray(codes, dtype=np.int64).reshape(len(codes), -1)}
    for node in graph.nodes:
        if isinstance(node, QDense):
            values[node.output] = dense(node, values[node.input])
        else:
            values[node.output] = add(node, *(values[i] for i in node.inputs))
    return values


def quantize_input(graph: QGraph, x: np.ndarray) -> np.ndarray:
    """What the host sends the accelerator: ONNX QuantizeLinear of floats, or integer codes as they are."""
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    return x.astype(np.int64) if graph.input_is_integer else graph.quant[graph.input].quantize(x)


def output_values(graph: QGraph, codes: np.ndarray) -> np.ndarray:
    """The model's output from the accelerator's: dequantized floats, or codes where the model returns integers."""
    shaped = (len(codes), *graph.output_shape)
    if graph.output_is_integer or graph.quant[graph.output] is None:
        return codes.reshape(shaped)
    return graph.quant[graph.output].dequantize(codes).astype(np.float32).reshape(shaped)


def run(graph: QGraph, x: np.ndarray) -> np.ndarray:
    """The compiled model on a batch of inputs, as the ONNX model would be called."""
    return output_values(graph, run_codes(graph, quantize_input(graph, x))[graph.output])
