"""quantize: post-training quantization of the float IR into the integer IR.

- Weights: symmetric, one scale per output channel, `bits` wide (codes within +-(2^(b-1)-1)).
- Activations: one (scale, zero point) per tensor from the min/max seen on the
  calibration inputs, signed `bits`-wide codes; what a pre-quantized model fixes
  is taken as it is.
- Dense: acc = W x + bias, with the input zero point folded into the bias;
  the accumulator width comes from the bound of |acc| over every input code.
  Requantization is fixed point (numbers.fixed_point); ReLU and Clip are a
  clamp of the requantized code, every other activation a 2^b-entry table,
  whose input range is narrowed to where its output code still changes.
- Add: both inputs rescaled to the output scale with one shared shift.
"""
from collections.abc import Callable
from functools import partial

import numpy as np

from undense.compiler.functions import Function
from undense.compiler.ir import Add, Dense, Graph, QAdd, QDense, QGraph, SparseRows
from undense.compiler.numbers import (
    LARGEST_MULTIPLIER,
    MULTIPLIER_BITS,
    SMALLEST_MULTIPLIER,
    QuantParams,
    activation_params,
    fixed_point,
    quantize_weights,
    signed_bits,
    symmetric_weight_scales,
)
from undense.compiler.reference import run_float
from undense.errors import UndenseError

MIN_BITS, MAX_BITS = 2, 8
# An activation alone at the model's output, whose result the model leaves unquantized (as onnxruntime's
# quantizer leaves a final Tanh), is a table of its exact values: kept this fine, not rounded to 8 bits.
FINE_OUTPUT_BITS = 16
LARGEST_BIAS = 2.0 ** 24  # in steps of the input scale times the weight scale, for weights undense quantizes
Calibrated = Callable[..., QuantParams | None]  # (tensor, min_scale, reachable) -> its parameters


def _check_bits(bits: int, where: str) -> None:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UndenseError(f"{where}: {bits} bits asked for; undense quantizes to {MIN_BITS} to {MAX_BITS} bits")


def needs_calibration(graph: Graph) -> bool:
    """Some tensor, or the input of some activation table, is not quantized by the model itself."""
    tensors = [graph.input, *(n.output for n in graph.nodes if not _takes_its_inputs_range(n))]
    return any(t not in graph.fixed_quant for t in tensors) or any(map(_calibrated_before_activation, graph.nodes))


def _takes_its_inputs_range(node: Dense | Add) -> bool:
    """An activation alone takes the values of its function over every input code: no calibration needed."""
    return isinstance(node, Dense) and node.is_elementwise_function


def _calibrated_before_activation(node: Dense | Add) -> bool:
    """The layer's value before its activation table is a tensor of its own, quantized by calibration. An
    activation alone between two tensors (as between QDQ pairs) is looked up on its input's codes instead."""
    return isinstance(node, Dense) and not node.activation.is_clamp and not node.is_elementwise_function


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
                           "give --calib FILE.npy (a few hundred typical inputs, shaped [N, features]) or, "
                           "for a latent input z ~ N(0, I), --calib normal:4096")

    def calibrated(seen: dict[str, np.ndarray], width: int, fixed=graph.fixed_quant) -> Calibrated:
        def params(tensor: str, min_scale: float = 0.0, reachable: np.ndarray | None = None,
                   narrow: Callable[[float, float], tuple[float, float]] | None = None) -> QuantParams | None:
            """The model's own parameters, else a range: `reachable` values, or those seen in calibration,
            `narrow`ed where given."""
            if tensor in fixed:
                return fixed[tensor]
            values = seen[tensor] if reachable is None else reachable
            low, high = float(values.min()), float(values.max())
            if narrow is not None:  # and a step wider each side, so the end codes' own values stay beyond it
                useful_low, useful_high = narrow(low, high)
                step = (useful_high - useful_low) / ((1 << width) - 1)
                low, high = max(low, useful_low - step), min(high, useful_high + step)
            return activation_params(low, high, width, min_scale)
        return params

    quant = {graph.input: calibrated(values, bits)(graph.input)}
    nodes = []
    for node in graph.nodes:
        width = layer_bits.get(node.name, bits)
        if isinstance(node, Dense):
            out_width = FINE_OUTPUT_BITS if node.output == graph.output and _takes_its_inputs_range(node) else width
            qnode, quant[node.output] = _dense(node, quant[node.input], calibrated(values, out_width),
                                               calibrated(pre_activation, width, fixed={}), width)
        else:
            qnode, quant[node.output] = _add(node, quant[node.inputs[0]], quant[node.inputs[1]],
                                             calibrated(values, width), graph.sizes[node.output])
        nodes.append(qnode)
    return QGraph(graph.input, graph.output, dict(graph.sizes), tuple(nodes), quant, graph.output_shape,
                  graph.input_is_integer, graph.output_is_integer, dict(graph.names), shapes=dict(graph.shapes),
                  condition_classes=graph.condition_classes)


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
    codes, scales, weight_bits = _weight_codes(node, q_in, bits)
    # a convolution's kernel codes repeat over its matrix, where those meeting one input add up
    matrix = codes if node.geometry is None else node.geometry.matrix(codes)
    weight = codes if node.geometry is None else SparseRows.from_csr(matrix)
    if node.geometry is not None and weight.nnz:
        weight_bits = max(weight_bits, signed_bits(int(weight.values.min()), int(weight.values.max())))
    scales = node.per_feature(scales)
    min_scale = q_in.scale * scales.max() / LARGEST_MULTIPLIER
    reachable = node.activation.apply(q_in.dequantize(np.arange(q_in.qmin, q_in.qmax + 1))) \
        if _takes_its_inputs_range(node) else None
    q_out = output_params(node.output, min_scale, reachable)
    bias_steps = node.bias / (q_in.scale * scales)
    if not np.all(np.abs(bias_steps) <= 2.0 ** 31):  # what an int32 bias, as ONNX's quantized ops keep it, holds
        raise UndenseError(f"layer '{node.name}': its bias is {np.max(np.abs(bias_steps)):.3g} steps of the input "
                           "scale times the weight scale, beyond an int32; check the scales the model gives it")
    bias = np.rint(bias_steps).astype(np.int64) - q_in.zero_point * matrix.sum(axis=1)
    bound = abs(matrix).sum(axis=1) * max(abs(q_in.qmin), abs(q_in.qmax)) + np.abs(bias)  # |acc| over all inputs
    acc_bits = signed_bits(-int(bound.max()), int(bound.max()))
    common = {"name": node.name, "input": node.input, "output": node.output, "weight": weight,
              "weight_bits": weight_bits, "bias": bias, "acc_bits": acc_bits, "activation": node.activation.kind,
              "geometry": node.geometry, "kernel": None if node.geometry is None else codes}
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
        # ONNX's DequantizeLinear -> f -> QuantizeLinear on every code the table can be indexed with
        requant = pre_params(node.output, min_scale, narrow=partial(_where_output_changes, function, q_out)) \
            if _calibrated_before_activation(node) else q_in
        low, high = requant.qmin, requant.qmax
        table = q_out.quantize(function.apply(requant.dequantize(np.arange(low, high + 1))))
    multiplier, shift = _fixed_point(node.name, q_in.scale * scales / requant.scale)
    return QDense(**common, multiplier=multiplier, shift=shift, requant=requant, clamp=(int(low), int(high)),
                  table=table), q_out


def _weight_codes(node: Dense, q_in: QuantParams, bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The weight's codes (shaped as the weight: a matrix, or a convolution's kernel), one scale per output
    channel, and the codes' width: the model's own where it fixes them."""
    if node.weight_codes is not None:
        return node.weight_codes, node.weight_scales, node.weight_bits
    if node.is_elementwise_function:  # codes of 1: the input's codes reach the activation unscaled
        ones = np.eye(len(node.bias), dtype=np.int64) if node.geometry is None else np.ones_like(node.weight, int)
        return ones, np.ones(node.channels), 2
    per_channel = node.weight.reshape(node.channels, -1)
    # a channel of tiny weights beside a bias: its step no finer than keeps the bias within LARGEST_BIAS steps
    largest_bias = np.abs(node.bias).reshape(node.channels, -1).max(axis=1)
    scales = np.maximum(symmetric_weight_scales(per_channel, bits), largest_bias / (q_in.scale * LARGEST_BIAS))
    return quantize_weights(per_channel, scales, bits).reshape(node.weight.shape), scales, bits


def _where_output_changes(function: Function, q_out: QuantParams, low: float, high: float) -> tuple[float, float]:
    """The part of [low, high] where f's output code still changes. Beyond it every value lands on the same end
    code (a Sigmoid's input below -6.2 on an 8-bit output in [0, 1]), so a table's input saturating there loses
    nothing, and its codes go where the output moves."""
    grid = np.linspace(low, high, 1 << 16)
    codes = q_out.quantize(function.apply(grid))
    below, above = np.flatnonzero(codes != codes[0]), np.flatnonzero(codes != codes[-1])
    if len(below) == 0:  # one code over the whole range
        return low, high
    return float(grid[below[0] - 1]), float(grid[above[-1] + 1])


def _fixed_point(layer: str, multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numbers.fixed_point, with a multiplier the hardware cannot take told as the model's problem."""
    multiplier = np.asarray(multiplier, dtype=np.float64)
    outside = ~((multiplier >= SMALLEST_MULTIPLIER) & (multiplier < 2.0 ** (MULTIPLIER_BITS - 1)))
    if np.any(outside):
        raise UndenseError(f"layer '{layer}': the input scale times the weight scale over the output scale is "
                           f"{multiplier[outside].flat[0]:.3g}, outside [2^-32, 2^{MULTIPLIER_BITS - 1}) where "
                           "fixed-point requantization works; check the scales the model gives this layer's tensors")
    return fixed_point(multiplier)


def _add(node: Add, q_a: QuantParams, q_b: QuantParams, output_params: Calibrated,
         features: int) -> tuple[QAdd, QuantParams]:
    q_out = output_params(node.output, max(q_a.scale, q_b.scale) / LARGEST_MULTIPLIER)
    real = np.array([q_a.scale / q_out.scale, q_b.scale / q_out.scale])
    _, shifts = _fixed_point(node.name, real)
    shift = int(shifts.min())
    multipliers = np.rint(real * 2.0 ** shift).astype(np.int64)
    return QAdd(node.name, node.inputs, node.output, (q_a.zero_point, q_b.zero_point),
                (int(multipliers[0]), int(multipliers[1])), shift, q_out, features), q_out
