"""quantize: post-training quantization of the float IR into the integer IR.

- Weights: symmetric, one scale per output channel, `bits` wide (codes within +-(2^(b-1)-1)).
- Activations: one (scale, zero point) per tensor from the min/max seen on the
  calibration inputs, signed `bits`-wide codes; what a pre-quantized model fixes
  is taken as it is.
- Dense: acc = W x + bias, with the input zero point folded into the bias;
  the accumulator width comes from the bound of |acc| over every input code.
  Requantization is fixed point (numbers.fixed_point); ReLU and Clip are a
  clamp of the requantized code, every other activation a 2^b-entry table.
- Add: both inputs rescaled to the output scale with one shared shift.
"""
from collections.abc import Callable

import numpy as np

from undense.compiler.ir import Add, Dense, Graph, QAdd, QDense, QGraph
from undense.compiler.numbers import (
    LARGEST_MULTIPLIER,
    QuantParams,
    activation_params,
    fixed_point,
    outside_fixed_point_range,
    quantize_weights,
    signed_bits,
    symmetric_weight_scales,
)
from undense.compiler.reference import run_float
from undense.errors import UndenseError

MIN_BITS, MAX_BITS = 2, 8
Calibrated = Callable[..., QuantParams | None]  # (tensor, min_scale) -> its parameters, fixed or calibrated


def _check_bits(bits: int, where: str) -> None:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UndenseError(f"{where}: {bits} bits asked for; undense quantizes to {MIN_BITS} to {MAX_BITS} bits")


def needs_calibration(graph: Graph) -> bool:
    return any(t not in graph.fixed_quant for t in [graph.input, *(n.output for n in graph.nodes)])


def quantize(graph: Graph, calibration: np.ndarray | None, bits: int = 8,
             layer_bits: dict[str, int] | None = None) -> QGraph:
    layer_bits = dict(layer_bits or {})
    _check_bits(bits, "--bits")
    names = [n.name for n in graph.nodes]
    for name, value in layer_bits.items():
        if name not in names:
            raise UndenseError(f"per-layer bits name layer '{name}', which the model does not have; "
                               f"its layers are: {', '.join(names)}")
        _check_bits(value, f"layer '{name}'")
    values, pre_activation = ({}, {}) if calibration is None else run_float(graph, _as_float(graph, calibration))
    if calibration is None and needs_calibration(graph):
        raise UndenseError("the model is not fully pre-quantized, so it needs calibration inputs: "
                           "give --calib FILE.npy (a few hundred typical inputs, shaped [N, features])")

    def calibrated(seen: dict[str, np.ndarray], width: int) -> Calibrated:
        def params(tensor: str, min_scale: float = 0.0) -> QuantParams | None:
            if tensor in graph.fixed_quant:
                return graph.fixed_quant[tensor]
            return activation_params(seen[tensor].min(), seen[tensor].max(), width, min_scale)
        return params

    quant = {graph.input: calibrated(values, bits)(graph.input)}
    nodes = []
    for node in graph.nodes:
        width = layer_bits.get(node.name, bits)
        if isinstance(node, Dense):
            qnode, quant[node.output] = _dense(node, quant[node.input], calibrated(values, width),
                                               calibrated(pre_activation, width), width)
        else:
            qnode, quant[node.output] = _add(node, quant[node.inputs[0]], quant[node.inputs[1]],
                                             calibrated(values, width), graph.sizes[node.output])
        nodes.append(qnode)
    return QGraph(graph.input, graph.output, dict(graph.sizes), tuple(nodes), quant, graph.output_shape,
                  graph.input_is_integer, graph.output_is_integer, dict(graph.names))


def _as_float(graph: Graph, calibration: np.ndarray) -> np.ndarray:
    calibration = np.asarray(calibration)
    if calibration.ndim < 2 or int(np.prod(calibration.shape[1:])) != graph.sizes[graph.input]:
        raise UndenseError(f"calibration inputs shaped {calibration.shape}; the model takes "
                           f"{graph.sizes[graph.input]} features per sample: give an array [N, "
                           f"{graph.sizes[graph.input]}]")
    if graph.input_is_integer:
        return graph.fixed_quant[graph.input].dequantize(calibration)
    return calibration.astype(np.float64)


def _dense(node: Dense, q_in: QuantParams, output_params: Calibrated, pre_params: Calibrated,
           bits: int) -> tuple[QDense, QuantParams | None]:
    if node.weight_codes is not None:
        codes, scales, weight_bits = node.weight_codes, node.weight_scales, node.weight_bits
    else:
        weight_bits = bits
        scales = symmetric_weight_scales(node.weight, bits)
        codes = quantize_weights(node.weight, scales, bits)
    min_scale = q_in.scale * scales.max() / LARGEST_MULTIPLIER
    q_out = output_params(node.output, min_scale)
    bias = np.rint(node.bias / (q_in.scale * scales)).astype(np.int64) - q_in.zero_point * codes.sum(axis=1)
    bound = np.abs(codes).sum(axis=1) * max(abs(q_in.qmin), abs(q_in.qmax)) + np.abs(bias)  # |acc| over all inputs
    acc_bits = signed_bits(-int(bound.max()), int(bound.max()))
    common = {"name": node.name, "input": node.input, "output": node.output, "weight": codes,
              "weight_bits": weight_bits, "bias": bias, "acc_bits": acc_bits, "activation": node.activation.kind}
    if q_out is None:  # the model's output is the raw accumulator
        return QDense(**common, multiplier=None, shift=None, requant=None, clamp=None, table=None), None
    function = node.activation
    if function.is_clamp:
        requant, table = q_out, None
        low, high = requant.qmin, requant.qmax
        if function.kind == "relu":
            low = max(low, q_out.zero_point)
        elif function.kind == "clip":
            low = max(low, int(q_out.quantize(function.low))) if np.isfinite(function.low) else low
            high = min(high, int(q_out.quantize(function.high))) if np.isfinite(function.high) else high
    else:
        requant = pre_params(node.output, min_scale)
        low, high = requant.qmin, requant.qmax
        table = q_out.quantize(function.apply(requant.dequantize(np.arange(low, high + 1))))
    multiplier, shift = _fixed_point(node.name, q_in.scale * scales / requant.scale)
    return QDense(**common, multiplier=multiplier, shift=shift, requant=requant, clamp=(int(low), int(high)),
                  table=table), q_out


def _add(node: Add, q_a: QuantParams, q_b: QuantParams, output_params: Calibrated,
         features: int) -> tuple[QAdd, QuantParams]:
    q_out = output_params(node.output, max(q_a.scale, q_b.scale) / LARGEST_MULTIPLIER)
    real = np.array([q_a.scale / q_out.scale, q_b.scale / q_out.scale])
    _, shifts = _fixed_point(node.name, real)
    shift = int(shifts.min())
    multipliers = np.rint(real * 2.0 ** shift).astype(np.int64)
    return QAdd(node.name, node.inputs, node.output, (q_a.zero_point, q_b.zero_point),
                (int(multipliers[0]), int(multipliers[1])), shift, q_out, features), q_out


def _fixed_point(layer: str, multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numbers.fixed_point; a multiplier out of its range (a pre-quantized model's scales far apart, or damaged)
    is the user's error, named by layer."""
    outside = outside_fixed_point_range(multiplier)
    if outside.size:
        raise UndenseError(f"layer '{layer}': requantizing into its output needs a multiplier of {outside[0]:.3g} "
                           "(input scale x weight scale / output scale), which fixed point cannot hold; its "
                           "quantization scales are far apart or damaged: fix the model's quantization")
    return fixed_point(multiplier)
