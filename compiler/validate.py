"""Damaged numbers, caught at import: one UndenseError naming the tensor and the node that reads it.

A corrupted file or a broken export can hold numbers no arithmetic should meet:
a tensor of a data type nobody knows, fewer bytes than its shape needs, a NaN or
infinite weight, a scale of zero, a zero point of another type than its codes.
Two checks stop them before they do:

- `check_model(model)`, on the ONNX file before anything reads it: every name
  is text; every stored tensor (initializer, Constant value, tensor attribute)
  is readable, its integers fit its type, its floats are finite (a Clip bound
  may be infinite on its side); every quantization scale is finite and
  positive, and every zero point has the type of the codes it goes with.
- `check_graph(graph)`, on the imported graph: what import computed from those
  numbers and from attributes (BatchNormalization folded into a scale, a
  constant expression folded) is finite, and every fixed scale is positive.
"""
import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from undense.compiler.ir import Dense, Graph
from undense.errors import UndenseError

FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
INTEGERS = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
            TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64, TensorProto.BOOL}
# Types ONNX stores widened in int32_data, where a damaged value can lie outside the type (onnx wraps it silently).
NARROW = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255), TensorProto.INT16: (-32768, 32767),
          TensorProto.UINT16: (0, 65535), TensorProto.BOOL: (0, 1), TensorProto.FLOAT16: (0, 65535),
          TensorProto.BFLOAT16: (0, 65535)}
SCALE_INPUTS = {"QuantizeLinear": (1,), "DequantizeLinear": (1,), "QLinearMatMul": (1, 4, 6)}
# (codes, zero point) pairs that ONNX types alike: ("input" | "output", index) of the codes, input index of the point
ZERO_POINTS = {"QuantizeLinear": ((("output", 0), 2),), "DequantizeLinear": ((("input", 0), 2),),
               "QLinearMatMul": ((("input", 0), 2), (("input", 3), 5), (("output", 0), 7)),
               "MatMulInteger": ((("input", 0), 2), (("input", 1), 3))}
CLIP_BOUNDS = {1: -np.inf, 2: np.inf}  # Clip's min may be -inf and its max inf: no bound on that side
DAMAGED = "the file's numbers are damaged or the export went wrong: export the model again"


def where(node: onnx.NodeProto) -> str:
    return f"node '{node.name or (node.output[0] if node.output else '?')}' ({node.op_type})"


def _type_name(data_type: int) -> str:
    return TensorProto.DataType.Name(data_type) if data_type in TensorProto.DataType.values() else str(data_type)


class _Tensors:
    """The model's stored tensors by name, with the nodes (and input positions) that read each."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.stored: dict[str, tuple[TensorProto, onnx.NodeProto | None]] = {t.name: (t, None)
                                                                              for t in graph.initializer}
        self.attributes: list[tuple[TensorProto, onnx.NodeProto, str]] = []
        self.uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        self.types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]
                      if v.type.HasField("tensor_type")}
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name:
                    self.uses.setdefault(name, []).append((node, index))
            for attribute in node.attribute:
                if attribute.type != onnx.AttributeProto.TENSOR:
                    continue
                if node.op_type == "Constant" and attribute.name == "value" and node.output:
                    self.stored[node.output[0]] = (attribute.t, node)
                else:
                    self.attributes.append((attribute.t, node, attribute.name))
        self.types.update({name: tensor.data_type for name, (tensor, _) in self.stored.items()})

    def role(self, node: onnx.NodeProto, index: int) -> str:
        """ONNX's name for a node's input (B, y_scale, ...), else its position."""
        try:
            formal = onnx.defs.get_schema(node.op_type, max(self.opset, 1), node.domain).inputs
        except Exception:  # an unknown op or opset: the position will do
            return str(index)
        return formal[min(index, len(formal) - 1)].name if formal else str(index)

    def label(self, name: str, creator: onnx.NodeProto | None) -> str:
        """Where a stored tensor is read: the first node that reads it, its input there, and the tensor."""
        uses = self.uses.get(name, [])
        if uses:
            node, index = uses[0]
            more = f" (and {len(uses) - 1} other nodes)" if len(uses) > 1 else ""
            return f"{where(node)}: input {self.role(node, index)} '{name}'{more}"
        if creator is not None:
            return f"{where(creator)}: value '{name}'"
        return f"initializer '{name}'"


def check_model(model: onnx.ModelProto) -> None:
    """Every name text; every stored tensor readable; every scale positive and every zero point typed like its
    codes; then every other float finite."""
    _check_names(model.graph)
    tensors = _Tensors(model)
    arrays = {name: _read(tensor, tensors.label(name, creator)) for name, (tensor, creator) in tensors.stored.items()}
    for node in model.graph.node:
        for index in SCALE_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] in arrays:
                _check_scale(arrays[node.input[index]], f"{where(node)}: scale '{node.input[index]}'")
        for (side, index), zero_index in ZERO_POINTS.get(node.op_type, ()):
            _check_zero_point_type(tensors, node, side, index, zero_index)
    for name, (tensor, creator) in tensors.stored.items():
        uses = tensors.uses.get(name, [])
        if uses:  # a tensor no node reads does no harm
            bounds = {CLIP_BOUNDS.get(i) if n.op_type == "Clip" else None for n, i in uses}
            _check_finite(tensor, arrays[name], tensors.label(name, creator),
                          allowed_infinity=bounds.pop() if len(bounds) == 1 else None)
    for tensor, node, attribute in tensors.attributes:
        label = f"{where(node)}: attribute '{attribute}'"
        _check_finite(tensor, _read(tensor, label), label, allowed_infinity=None)


def _check_names(graph: onnx.GraphProto) -> None:
    """Names are text: protobuf hands a damaged (not UTF-8) string over as bytes."""
    named = [("node", n.name) for n in graph.node] + [("op", n.op_type) for n in graph.node]
    named += [("tensor", name) for n in graph.node for name in [*n.input, *n.output]]
    named += [("attribute", a.name) for n in graph.node for a in n.attribute]
    named += [("tensor", v.name) for v in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]]
    for what, name in named:
        if not isinstance(name, str):
            raise UndenseError(f"the model has a {what} name that is not UTF-8 text ({name!r}); {DAMAGED}")


def _read(tensor: TensorProto, label: str) -> np.ndarray:
    if tensor.data_type not in FLOATS | INTEGERS:
        known = tensor.data_type in TensorProto.DataType.values() and tensor.data_type != TensorProto.UNDEFINED
        why = (f"is of type {_type_name(tensor.data_type)}, which undense does not read (it reads float, double, "
               "float16, bfloat16, integer and bool tensors)" if known
               else f"has data type {tensor.data_type}, which ONNX does not define; {DAMAGED}")
        raise UndenseError(f"{label} {why}")
    low_high = NARROW.get(tensor.data_type)
    if low_high is not None and tensor.int32_data:
        stored = np.asarray(tensor.int32_data, dtype=np.int64)
        if stored.min() < low_high[0] or stored.max() > low_high[1]:
            bad = stored[(stored < low_high[0]) | (stored > low_high[1])][0]
            raise UndenseError(f"{label} holds {bad}, which a {_type_name(tensor.data_type)} cannot represent; "
                               f"{DAMAGED}")
    try:
        return numpy_helper.to_array(tensor)
    except Exception as error:
        shape = "x".join(map(str, tensor.dims)) or "a scalar"
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UndenseError(f"{label} cannot be read as {_type_name(tensor.data_type)} of shape {shape} "
                           f"({reason}); {DAMAGED}") from None


def _check_finite(tensor: TensorProto, values: np.ndarray, label: str, allowed_infinity: float | None) -> None:
    """No NaN, and no infinity but `allowed_infinity` (a Clip bound's own side)."""
    if tensor.data_type not in FLOATS or values.size == 0:
        return
    with np.errstate(invalid="ignore"):  # a NaN of a narrow float type warns as it widens
        values = values.astype(np.float64)
    nans = int(np.isnan(values).sum())
    infinities = int((np.isinf(values) & (values != allowed_infinity)).sum())
    if nans or infinities:
        raise UndenseError(f"{label} holds NaN or infinite values ({nans:,} NaN and {infinities:,} infinite of "
                           f"{values.size:,}); {DAMAGED}")


def _check_scale(values: np.ndarray, label: str) -> None:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
        raise UndenseError(f"{label} is {bad[0]:g}; a quantization scale must be a positive finite number: "
                           "fix the quantization or export the model again")


def _check_zero_point_type(tensors: _Tensors, node: onnx.NodeProto, side: str, index: int, zero_index: int) -> None:
    names = node.input if side == "input" else node.output
    if zero_index >= len(node.input) or not node.input[zero_index] or index >= len(names):
        return
    zero, codes = node.input[zero_index], names[index]
    zero_type, codes_type = tensors.types.get(zero), tensors.types.get(codes)
    if zero_type and codes_type and zero_type != codes_type:
        raise UndenseError(f"{where(node)}: zero point '{zero}' is {_type_name(zero_type)} but the codes "
                           f"'{codes}' it goes with are {_type_name(codes_type)}; a zero point has the type of its "
                           "codes: export the model again")


def check_graph(graph: Graph) -> None:
    """What import computed is finite: NaN or infinity from a folded constant or an attribute, named by layer."""
    for node in graph.nodes:
        if not isinstance(node, Dense):
            continue
        function = node.activation
        damaged = {"weights": not np.all(np.isfinite(node.weight)), "biases": not np.all(np.isfinite(node.bias)),
                   "activation slope": not np.isfinite(function.alpha),
                   "clip bounds": not (function.low < np.inf and function.high > -np.inf)}
        for what, is_damaged in damaged.items():
            if is_damaged:
                raise UndenseError(f"layer '{node.name}': its {what} are NaN or infinite after import (from its "
                                   "constants or attributes: a negative variance or epsilon, a division by zero, "
                                   f"...); {DAMAGED}")
        if node.weight_scales is not None:
            _check_scale(node.weight_scales, f"layer '{node.name}': its weight scale")
    for tensor, params in graph.fixed_quant.items():
        if params is not None:
            _check_scale(np.array(params.scale), f"tensor '{tensor}': its quantization scale")
