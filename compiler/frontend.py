"""ONNX to the float IR: load, check, infer shapes, fold constants, map each node.

Float models map onto `Dense` and `Add`; pre-quantized models (QDQ pairs,
QLinearMatMul, MatMulInteger) map onto the same nodes with their quantization
recorded as it is in the file, so the quantize pass takes it over unchanged.
Conv and ConvTranspose are `Dense` layers with a kernel and its geometry; a
nearest Resize by whole factors becomes the addressing of the Conv it feeds (or,
feeding anything else, a layer of its own). The shape arithmetic an exporter
writes for a symbolic batch (Shape, Gather, Concat, ...) is evaluated at import,
the batch counted as 1. Every rejection is an UndenseError naming the node, its
op, why, and what is supported.
"""
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from undense.compiler.condition import condition_classes
from undense.compiler.functions import IDENTITY, Function
from undense.compiler.geometry import Conv2d, conv_output_size, conv_transpose_output_size
from undense.compiler.ir import Add, Dense, Graph
from undense.compiler.numbers import QuantParams, signed_bits
from undense.compiler.validate import check_graph, check_model, where
from undense.errors import UndenseError

MIN_OPSET = 13
SUPPORTED = ("Gemm, MatMul (+ Add), Conv, ConvTranspose, Resize (nearest, whole factors), Add, Mul by a "
             "constant, Relu, LeakyRelu, Sigmoid, Tanh, Clip, BatchNormalization, Reshape, Flatten, Identity, "
             "QuantizeLinear/DequantizeLinear, QLinearMatMul, MatMulInteger, and shape arithmetic on Shape")
ACTIVATIONS = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Clip": "clip"}
ALIASES = ("Reshape", "Flatten", "Identity")
NOT_FOLDED = ("DequantizeLinear",)  # kept so the codes it carries are imported as they are
SHAPE_BATCH = 1  # the batch size Shape reports at import: only per-sample sizes may depend on what it computes
RAW_ACCUMULATOR = None  # fixed_quant value of a tensor that is an int32 accumulator (MatMulInteger)


@dataclass(frozen=True, eq=False)
class QuantizedConstant:
    """Integer codes from the file with their scale and zero point: per tensor, or one per index of `axis`."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1 or self.zero_point.size > 1

    def broadcast(self, per_channel: np.ndarray) -> np.ndarray:
        """A per-tensor or per-channel constant shaped to broadcast against the codes."""
        if per_channel.ndim == 0 or per_channel.size == 1:
            return per_channel.reshape(())
        shape = [1] * self.codes.ndim
        shape[self.axis] = -1
        return per_channel.reshape(shape)

    def values(self) -> np.ndarray:
        """DequantizeLinear: (code - zero point) * scale."""
        return (self.codes.astype(np.float64) - self.broadcast(self.zero_point)) * self.broadcast(
            self.scale.astype(np.float64))

    @property
    def bits(self) -> int:
        """Width of a code less its zero point over the type's whole range: int8 with zero point 0 stays
        8 bits; uint8, or int8 with another zero point, needs 9."""
        info = np.iinfo(self.codes.dtype)
        zero = self.zero_point.astype(np.int64)
        return signed_bits(int(info.min - zero.max()), int(info.max - zero.min()))


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes by name, strings decoded."""
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {name: value.decode() if isinstance(value, bytes) else value for name, value in values.items()}


def load_model(source: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Parse (with external data next to the file), check, and infer shapes; every failure is an UndenseError."""
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        path = Path(source)
        if not path.is_file():
            raise UndenseError(f"{path}: no such file; give the path of an .onnx model")
        try:
            with warnings.catch_warnings():  # onnx warns of damage it then fails on, or that does no harm
                warnings.simplefilter("ignore")
                model = onnx.load(str(path))
        except Exception as error:
            raise UndenseError(f"{path}: not a readable ONNX model ({_first_line(error)}); "
                               "the file may be truncated or not ONNX: export it again") from None
    check_model(model)
    try:
        onnx.checker.check_model(model)
        model = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as error:
        raise UndenseError(f"the model fails onnx.checker or shape inference ({_first_line(error)}); "
                           "fix the export, or run onnx.checker.check_model on it to see where") from None
    opset = onnx_opset(model)
    if opset < MIN_OPSET:
        raise UndenseError(f"the model uses ONNX opset {opset}; undense reads opset {MIN_OPSET} and newer: "
                           "convert it with onnx.version_converter.convert_version(model, 17)")
    if opset > onnx.defs.onnx_opset_version():
        raise UndenseError(f"the model uses ONNX opset {opset}, which the installed onnx does not define (it knows "
                           f"up to opset {onnx.defs.onnx_opset_version()}): export it with a released opset")
    return model


def onnx_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX domain, 0 where it names none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class _Importer:
    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.metadata = {entry.key: entry.value for entry in model.metadata_props}
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.types = {v.name: v.type.tensor_type for v in
                      [*self.graph.input, *self.graph.value_info, *self.graph.output]}
        self.alias: dict[str, str] = {}
        self.upsampled: dict[str, tuple] = {}  # Resize output -> (its input, factors, the node)
        self.sizes: dict[str, int] = {}
        self.known: dict[str, tuple[int, ...]] = {}  # per-sample shape of each ONNX tensor import computed
        self.nodes: list[Dense | Add] = []
        self.fixed_quant: dict[str, QuantParams | None] = {}
        self.quantized_constants: dict[str, QuantizedConstant] = {}

    # -- helpers ---------------------------------------------------------------------------
    def tensor(self, name: str) -> str:
        return self.alias.get(name, name)

    def constant(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or node.input[index] == "":
            raise UndenseError(f"{where(node)}: {what} is missing")
        name = node.input[index]
        if name not in self.constants:
            raise UndenseError(f"{where(node)}: {what} '{name}' must be a constant (an initializer); "
                               "undense compiles fixed weights only")
        return self.constants[name]

    def constant_inputs(self, node, what: str, fixed: str) -> dict[str, np.ndarray]:
        """Every input of `node` after its first (its `what`), each a constant or computed from Shape."""
        for name in node.input[1:]:
            if name and name not in self.constants:
                raise UndenseError(f"{where(node)}: its {what} '{name}' must be constant (or shape arithmetic on "
                                   f"Shape); undense compiles fixed {fixed} only")
        return {name: self.constants[name] for name in node.input[1:] if name}

    def optional_constant(self, node, index: int, default):
        if index >= len(node.input) or node.input[index] == "":
            return default
        return self.constant(node, index, f"input {index}")

    def activation(self, node, index: int = 0) -> str:
        name = node.input[index]
        if name in self.upsampled and name not in self.sizes:  # an upsampling that feeds no Conv: a layer
            self.materialize_upsampling(name)
        if name in self.constants:
            raise UndenseError(f"{where(node)}: input '{name}' is a constant where an activation is expected")
        tensor = self.tensor(name)
        if tensor not in self.sizes:
            raise UndenseError(f"{where(node)}: input '{name}' does not come from the graph input or a "
                               f"supported node; supported: {SUPPORTED}")
        return tensor

    def per_sample_size(self, name: str, node=None) -> int:
        tensor_type = self.types.get(name)
        label = where(node) if node is not None else f"graph input '{name}'"
        if tensor_type is None or not tensor_type.HasField("shape"):
            raise UndenseError(f"{label}: the shape of '{name}' is unknown after shape inference; "
                               "export the model with static shapes (only the batch dimension may be symbolic)")
        dims = tensor_type.shape.dim
        if len(dims) < 2:
            raise UndenseError(f"{label}: '{name}' has rank {len(dims)}; undense expects [batch, features...]")
        for dim in dims[1:]:
            if not dim.HasField("dim_value"):
                kind = f"a dynamic dimension '{dim.dim_param}'" if dim.dim_param else "an unknown dimension"
                raise UndenseError(f"{label}: '{name}' has {kind} after the batch dimension; "
                                   "only the batch dimension may be symbolic: export with a fixed size")
        return int(np.prod([d.dim_value for d in dims[1:]]))

    def per_sample_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d.dim_value for d in self.types[name].shape.dim[1:])

    def shape_of(self, name: str, node=None) -> tuple[int, ...]:
        """A tensor's per-sample shape: as import computed it, else as shape inference gives it (static)."""
        if name in self.known:
            return self.known[name]
        self.per_sample_size(name, node)
        return self.per_sample_shape(name)

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        """The per-sample shape shape inference gives a tensor, where it is fully known."""
        tensor_type = self.types.get(name)
        if tensor_type is None or not tensor_type.HasField("shape"):
            return None
        dims = tensor_type.shape.dim[1:]
        return tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None

    def map_shape(self, name: str, node) -> tuple[int, int, int]:
        """The (C, H, W) of a feature map [batch, C, H, W] a convolution reads."""
        shape = self.shape_of(name, node)
        if len(shape) != 3:
            hint = {2: "1-D convolutions are not supported: reshape to [N, C, 1, L] and use a 2-D one",
                    4: "3-D convolutions are not supported: undense compiles 2-D ones"}
            raise UndenseError(f"{where(node)}: '{name}' is shaped [batch, {', '.join(map(str, shape))}]; "
                               f"{hint.get(len(shape), 'undense convolves feature maps [batch, C, H, W]')}")
        return shape

    def add_dense(self, node, input_name, weight, bias=None, activation=IDENTITY, **quantized):
        output = node.output[0]
        weight = np.asarray(weight, dtype=np.float64)
        geometry = quantized.get("geometry")
        if geometry is not None:  # a bias per output channel: every feature of the channel gets it
            bias = np.zeros(1) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
            if bias.size != geometry.out_features:
                bias = np.repeat(np.broadcast_to(bias, (weight.shape[0],)), geometry.out_features // weight.shape[0])
            self.append(Dense(node.name or output, input_name, output, weight, bias, activation, **quantized),
                        geometry.out_shape)
            return
        if weight.shape[1] != self.sizes[input_name]:
            raise UndenseError(f"{where(node)}: weight has {weight.shape[1]} inputs but '{input_name}' "
                               f"has {self.sizes[input_name]} features")
        bias = np.zeros(1) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
        if bias.size not in (1, weight.shape[0]):
            raise UndenseError(f"{where(node)}: {bias.size} bias values for {weight.shape[0]} outputs; "
                               "give one bias per output or one for all")
        bias = np.broadcast_to(bias, (weight.shape[0],)).copy()
        self.append(Dense(node.name or output, input_name, output, weight, bias, activation, **quantized),
                    (weight.shape[0],))

    def append(self, layer: Dense | Add, shape: tuple[int, ...]):
        """A layer of the IR, and the per-sample shape of the tensor it makes."""
        self.nodes.append(layer)
        self.sizes[layer.output], self.known[layer.output] = int(np.prod(shape)), tuple(shape)

    def diagonal(self, node, input_name, scale=1.0, shift=0.0, activation=IDENTITY):
        """y = f(scale * x + shift), the constants broadcast over [batch, *x's shape] as ONNX broadcasts them.
        On a feature map with one scale per channel, a 1x1 kernel per channel rather than a diagonal matrix."""
        name = node.input[0] if node.input[0] not in self.constants else node.input[1]
        shape = self.shape_of(name, node)
        scale, shift = (self.broadcast(node, value, shape) for value in (scale, shift))
        if len(shape) == 3:
            per_channel = scale.reshape(shape[0], -1)
            if np.all(per_channel == per_channel[:, :1]):
                kernel = per_channel[:, 0].reshape(-1, 1, 1, 1)
                self.add_dense(node, input_name, kernel, shift, activation, geometry=Conv2d.channelwise(shape))
                return
        self.add_dense(node, input_name, np.diag(scale), shift, activation)
        self.known[node.output[0]] = shape

    @staticmethod
    def broadcast(node, value, shape: tuple[int, ...]) -> np.ndarray:
        """A constant broadcast, as ONNX broadcasts it, over one sample [1, *shape]: flat, one per feature."""
        value = np.asarray(value, dtype=np.float64)
        try:
            return np.broadcast_to(value, (1, *shape)).reshape(-1).copy()
        except ValueError:
            raise UndenseError(f"{where(node)}: a constant shaped {list(value.shape)} does not broadcast over a "
                               f"tensor [batch, {', '.join(map(str, shape))}] without growing it; give one value, "
                               "one per feature or one per channel") from None

    # -- ops ---------------------------------------------------------------------------------
    def Gemm(self, node):
        attrs = attributes(node)
        if attrs.get("transA", 0):
            raise UndenseError(f"{where(node)}: transA=1 is not supported; the activation must be A")
        x = self.activation(node, 0)
        trans_b = attrs.get("transB", 0)
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        bias = self.optional_constant(node, 2, 0.0) * beta
        codes = self.quantized_constants.get(node.input[1])
        if codes is not None:
            weight, quantized = self._imported_weight(node, codes, 0 if trans_b else 1, alpha)
            self.add_dense(node, x, weight, bias, **quantized)
            return
        b = self.constant(node, 1, "weight B")
        self.add_dense(node, x, alpha * (b if trans_b else b.T), bias)

    def MatMul(self, node):
        x = self.activation(node, 0)
        codes = self.quantized_constants.get(node.input[1])
        if codes is not None:
            weight, quantized = self._imported_weight(node, codes, rows_axis=1)
            self.add_dense(node, x, weight, **quantized)
            return
        b = self.constant(node, 1, "weight B")
        if b.ndim != 2:
            raise UndenseError(f"{where(node)}: weight of rank {b.ndim}; only 2-D weights are supported")
        self.add_dense(node, x, b.T)

    def _imported_weight(self, node, weight: "QuantizedConstant", rows_axis: int, alpha: float = 1.0, rank: int = 2):
        """Pre-quantized weight codes as (float weight, keyword fields) with rows = output channels (axis 0:
        a matrix's rows, a kernel's output channels).

        The codes are kept as the file has them, less their zero point (which may need one bit more than
        the type: see QuantizedConstant.bits). Scales along the input axis cannot be one requantization
        multiplier per output row, so such a weight is imported as its float values and quantized again.
        """
        if weight.codes.ndim != rank:
            raise UndenseError(f"{where(node)}: weight of rank {weight.codes.ndim}; only {rank}-D weights are "
                               "supported here")
        if weight.codes.dtype not in (np.int8, np.uint8):
            raise UndenseError(f"{where(node)}: {weight.codes.dtype} weight codes are not supported; "
                               "quantize weights to int8 or uint8")
        real = weight.values() * alpha
        real = real if rows_axis == 0 else real.swapaxes(0, 1)
        if weight.per_channel and weight.axis != rows_axis:
            return real, {}
        rows = weight.codes.shape[rows_axis]
        codes = weight.codes.astype(np.int64) - weight.broadcast(weight.zero_point)
        codes = (codes if rows_axis == 0 else codes.swapaxes(0, 1)) * int(np.sign(alpha) or 1)
        scales = np.broadcast_to(weight.scale.astype(np.float64).reshape(-1), (rows,)) * abs(alpha)
        bits = max(weight.bits, signed_bits(int(codes.min(initial=0)), int(codes.max(initial=0))))  # -1 * -128
        quantized = {"weight_codes": codes, "weight_scales": scales.copy(), "weight_bits": bits}
        return real, quantized

    # -- convolutions ------------------------------------------------------------------------
    def Conv(self, node):
        self.convolution(node, transposed=False)

    def ConvTranspose(self, node):
        self.convolution(node, transposed=True)

    def convolution(self, node, transposed: bool):
        attrs = attributes(node)
        source = node.input[0]
        upsample = (1, 1)
        if source in self.upsampled and not transposed:  # nearest upsampling first: the Conv's addressing
            source, upsample, _ = self.upsampled[source]
            x = self.tensor(source)
        else:
            x = self.activation(node, 0)
        in_shape = self.map_shape(source, node)
        codes = self.quantized_constants.get(node.input[1])
        weight = codes.values() if codes is not None else self.constant(node, 1, "weight")
        if weight.ndim != 4:
            raise UndenseError(f"{where(node)}: a weight of rank {weight.ndim}; undense compiles 2-D convolutions "
                               "(weights [out, in, kh, kw])")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise UndenseError(f"{where(node)}: dilations {list(attrs['dilations'])} are not supported; undense "
                               "convolves with dilation 1 (a dilated kernel can be written out with zeros between "
                               "its taps)")
        groups = attrs.get("group", 1)
        if transposed and groups != 1:
            raise UndenseError(f"{where(node)}: a grouped ConvTranspose (group={groups}) is not supported; use "
                               "group=1, or a grouped Conv after a nearest Upsample")
        kernel = tuple(weight.shape[2:])
        stride = tuple(attrs.get("strides", [1, 1]))
        upsampled_in = (in_shape[1] * upsample[0], in_shape[2] * upsample[1])
        pads = self.conv_pads(node, attrs, upsampled_in, kernel, stride, transposed)
        out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
        if in_shape[0] % groups or weight.shape[0 if transposed else 1] * (1 if transposed else groups) != in_shape[0]:
            raise UndenseError(f"{where(node)}: a weight shaped {list(weight.shape)} with group={groups} for an "
                               f"input of {in_shape[0]} channels")
        out_shape = (out_channels, *self.conv_output(attrs, upsampled_in, kernel, stride, pads, transposed))
        if min(out_shape) < 1:
            raise UndenseError(f"{where(node)}: its attributes give an output of {list(out_shape)}; "
                               "export the model again")
        inferred = self.static_shape(node.output[0])
        if inferred is not None and inferred != out_shape:
            raise UndenseError(f"{where(node)}: its output is {list(inferred)} but its attributes give "
                               f"{list(out_shape)}; export the model again")
        geometry = Conv2d(in_shape, out_shape, kernel, stride, pads, groups, transposed, upsample)
        bias = self.optional_constant(node, 2, None)
        rows_axis = 1 if transposed else 0
        if codes is not None:
            real, quantized = self._imported_weight(node, codes, rows_axis, rank=4)
        else:
            real, quantized = weight.swapaxes(0, 1) if transposed else weight, {}
        self.add_dense(node, x, real, bias, geometry=geometry, **quantized)

    @staticmethod
    def conv_pads(node, attrs, size, kernel, stride, transposed) -> tuple[int, int, int, int]:
        """pads as (top, left, bottom, right), from `pads` or from auto_pad / output_shape as ONNX derives them."""
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if "pads" in attrs or (auto_pad in ("NOTSET", "VALID") and "output_shape" not in attrs):
            pads = tuple(attrs.get("pads", [0, 0, 0, 0]))
            if auto_pad == "VALID" and any(pads):
                raise UndenseError(f"{where(node)}: auto_pad=VALID with pads {list(pads)}; give one or the other")
            return pads
        output_padding = attrs.get("output_padding", [0, 0])
        totals = []
        for axis in range(2):
            if transposed:
                wanted = attrs["output_shape"][-2 + axis] if "output_shape" in attrs else size[axis] * stride[axis]
                total = stride[axis] * (size[axis] - 1) + output_padding[axis] + kernel[axis] - wanted
            else:
                wanted = -(-size[axis] // stride[axis])
                total = max((wanted - 1) * stride[axis] + kernel[axis] - size[axis], 0)
            totals.append(total)
        first = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
        return (first[0], first[1], totals[0] - first[0], totals[1] - first[1])

    @staticmethod
    def conv_output(attrs, size, kernel, stride, pads, transposed) -> tuple[int, int]:
        if transposed:
            extra = attrs.get("output_padding", [0, 0])
            return tuple(conv_transpose_output_size(size[a], kernel[a], stride[a], pads[a], pads[a + 2], extra[a])
                         for a in range(2))
        return tuple(conv_output_size(size[a], kernel[a], stride[a], pads[a], pads[a + 2]) for a in range(2))

    def Resize(self, node):
        """Nearest upsampling by whole factors: recorded, and folded into the Conv it feeds."""
        self.activation(node, 0)  # what it upsamples is a tensor of the graph
        attrs = attributes(node)
        mode = attrs.get("mode", "nearest")
        if mode != "nearest":
            raise UndenseError(f"{where(node)}: {mode} resizing is not supported; undense upsamples by nearest "
                               "neighbour with whole factors (nn.Upsample(scale_factor=2), the default mode)")
        in_shape = self.map_shape(node.input[0], node)
        inputs = self.constant_inputs(node, "scales or sizes", "sizes")
        scales = inputs.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scales is not None and not (np.all(scales == np.round(scales)) and np.all(scales[:2] == 1)):
            raise UndenseError(f"{where(node)}: its scales {np.asarray(scales).tolist()} are not whole factors of the "
                               "height and width alone; undense upsamples by whole factors (a quantizer that "
                               "quantized the scales, as onnxruntime's does when Concat builds them, makes them "
                               "inexact: keep them float)")
        index = np.arange(np.prod(in_shape), dtype=np.float32).reshape(1, *in_shape)
        try:
            gathered = ReferenceEvaluator(node).run(None, {node.input[0]: index, **inputs})[0]
        except Exception as error:
            raise UndenseError(f"{where(node)}: cannot evaluate this Resize ({_first_line(error)})") from None
        out_shape = gathered.shape[1:]
        factors = (out_shape[1] // in_shape[1], out_shape[2] // in_shape[2])
        whole = (gathered.shape[:2] == (1, in_shape[0]) and min(factors) >= 1
                 and (in_shape[1] * factors[0], in_shape[2] * factors[1]) == out_shape[1:])
        copied = index[:, :, :, None, :, None].repeat(max(factors[0], 1), axis=3).repeat(max(factors[1], 1), axis=5)
        if not whole or not np.array_equal(gathered, copied.reshape(gathered.shape)):
            raise UndenseError(f"{where(node)}: resizes [{', '.join(map(str, in_shape))}] to "
                               f"[{', '.join(map(str, out_shape))}] in a way that is not a nearest upsampling by "
                               "whole factors (each pixel repeated); undense supports only that (scales such as "
                               "[1, 1, 2, 2], coordinate_transformation_mode asymmetric or half_pixel)")
        self.upsampled[node.output[0]] = (node.input[0], factors, node)
        self.known[node.output[0]] = out_shape

    def materialize_upsampling(self, name: str):
        """An upsampling that something other than a Conv reads: a layer copying each pixel (a 1x1 kernel of 1
        per channel over the upsampled map)."""
        source, factors, node = self.upsampled[name]
        in_shape, out_shape = self.known[source], self.known[name]
        geometry = Conv2d(in_shape, out_shape, (1, 1), groups=in_shape[0], upsample=factors)
        self.add_dense(node, self.tensor(source), np.ones((in_shape[0], 1, 1, 1)), None, geometry=geometry)

    def Add(self, node):
        constant_inputs = [i for i in node.input if i in self.constants]
        if len(constant_inputs) == 1:
            x = self.activation(node, 1 if node.input[0] in self.constants else 0)
            self.diagonal(node, x, shift=self.constants[constant_inputs[0]])
            return
        a, b = self.activation(node, 0), self.activation(node, 1)
        if self.sizes[a] != self.sizes[b]:
            raise UndenseError(f"{where(node)}: adds {self.sizes[a]} to {self.sizes[b]} features; "
                               "broadcasting between activations is not supported")
        self.append(Add(node.name or node.output[0], (a, b), node.output[0]), self.shape_of(node.input[0], node))

    def Mul(self, node):
        constant_inputs = [i for i in node.input if i in self.constants]
        if len(constant_inputs) != 1:
            raise UndenseError(f"{where(node)}: Mul of two activations is not supported; "
                               "only Mul by a constant")
        x = self.activation(node, 1 if node.input[0] in self.constants else 0)
        self.diagonal(node, x, scale=self.constants[constant_inputs[0]])

    def BatchNormalization(self, node):
        x = self.activation(node, 0)
        rank = 1 + len(self.shape_of(node.input[0], node))
        if rank not in (2, 4):
            raise UndenseError(f"{where(node)}: BatchNormalization on a tensor of rank {rank}; undense normalizes "
                               "[batch, features] and [batch, C, H, W]")
        attrs = attributes(node)
        if attrs.get("training_mode", 0):
            raise UndenseError(f"{where(node)}: training_mode=1; export the model in eval mode")
        gamma, beta, mean, var = (self.constant(node, i, what) for i, what in
                                  enumerate(("scale", "bias", "mean", "variance"), start=1))
        factor = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
        per_channel = (-1,) + (1, 1) * (rank == 4)  # along axis 1, as ONNX normalizes
        self.diagonal(node, x, scale=factor.reshape(per_channel), shift=(beta - mean * factor).reshape(per_channel))

    def activation_op(self, node):
        x = self.activation(node, 0)
        attrs = attributes(node)
        kind = ACTIVATIONS[node.op_type]
        if kind == "clip":
            low = self.optional_constant(node, 1, -np.inf)
            high = self.optional_constant(node, 2, np.inf)
            if np.size(low) != 1 or np.size(high) != 1:
                raise UndenseError(f"{where(node)}: Clip bounds of {np.size(low)} and {np.size(high)} values; "
                                   "min and max must be one number each")
            function = Function("clip", low=float(np.reshape(low, -1)[0]), high=float(np.reshape(high, -1)[0]))
        else:
            function = Function(kind, alpha=float(attrs.get("alpha", 0.01)) if kind == "leaky_relu" else 0.0)
        self.diagonal(node, x, activation=function)

    def alias_op(self, node):
        x = self.activation(node, 0)
        if node.op_type == "Flatten":
            axis = attributes(node).get("axis", 1)
            if axis != 1:
                raise UndenseError(f"{where(node)}: Flatten with axis={axis}; only axis=1 keeps the batch apart")
        shape = self.reshaped(node)
        if shape is None or int(np.prod(shape)) != self.sizes[x]:
            size = "a different batch" if shape is None else f"{int(np.prod(shape))} features"
            raise UndenseError(f"{where(node)}: reshapes {self.sizes[x]} features per sample into {size}; "
                               "the batch dimension must stay first and alone")
        self.alias[node.output[0]] = x
        self.known[node.output[0]] = shape

    def reshaped(self, node) -> tuple[int, ...] | None:
        """The per-sample shape a Reshape, Flatten or Identity gives one batch of SHAPE_BATCH samples (None where
        the batch does not stay first), computed with ONNX's reference implementation."""
        sample = np.zeros((SHAPE_BATCH, *self.shape_of(node.input[0], node)), dtype=np.float32)
        inputs = {node.input[0]: sample, **self.constant_inputs(node, "shape", "shapes")}
        try:
            result = ReferenceEvaluator(node).run(None, inputs)[0]
        except Exception as error:
            raise UndenseError(f"{where(node)}: cannot evaluate it on a sample ({_first_line(error)})") from None
        return tuple(result.shape[1:]) if result.ndim >= 1 and result.shape[0] == SHAPE_BATCH else None

    def QuantizeLinear(self, node):
        x = self.activation(node, 0)
        self.alias[node.output[0]] = x
        self.known[node.output[0]] = self.shape_of(node.input[0], node)
        self._fix(node, x, self._params(node))

    def DequantizeLinear(self, node):
        source = node.input[0]
        if source in self.constants:  # weight or bias codes
            codes = self.constants[source]
            constant = self._quantized(node, codes, self.constant(node, 1, "scale"),
                                       self.optional_constant(node, 2, np.zeros((), dtype=codes.dtype)),
                                       self._axis(node))
            self.constants[node.output[0]] = constant.values()
            if codes.dtype != np.int32:
                self.quantized_constants[node.output[0]] = constant
            return
        x = self.tensor(source)
        if x not in self.sizes:
            raise UndenseError(f"{where(node)}: dequantizes '{source}', which is neither a constant nor "
                               "a quantized activation")
        self.alias[node.output[0]] = x
        self.known[node.output[0]] = self.shape_of(source, node)
        self._fix(node, x, self._params(node))

    @staticmethod
    def _quantized(node, codes, scale, zero_point, axis: int) -> QuantizedConstant:
        """Codes with a scale and zero point each of one value (axis ignored) or one per channel along `axis`."""
        scale, zero_point = np.asarray(scale), np.asarray(zero_point)
        if scale.size == 1 and zero_point.size == 1:
            return QuantizedConstant(codes, scale, zero_point, 0)
        if not -codes.ndim <= axis < codes.ndim:
            raise UndenseError(f"{where(node)}: per-channel axis={axis} for a tensor of rank {codes.ndim}")
        axis %= codes.ndim
        for what, value in (("scale", scale), ("zero point", zero_point)):
            if value.size not in (1, codes.shape[axis]):
                raise UndenseError(f"{where(node)}: the {what} has {value.size} values for {codes.shape[axis]} "
                                   f"channels along axis {axis}; give one, or one per channel")
        return QuantizedConstant(codes, scale, zero_point, axis)

    @staticmethod
    def _axis(node) -> int:
        """DequantizeLinear's per-channel axis; blocked quantization is refused."""
        attrs = attributes(node)
        if attrs.get("block_size", 0):
            raise UndenseError(f"{where(node)}: blocked quantization (block_size={attrs['block_size']}) is not "
                               "supported; quantize weights per tensor or per channel")
        return attrs.get("axis", 1)

    def _fix(self, node, tensor, params):
        known = self.fixed_quant.get(tensor)
        if known is not None and known != params:
            raise UndenseError(f"{where(node)}: '{tensor}' is quantized twice with different parameters")
        self.fixed_quant[tensor] = params

    def _params(self, node, scale_index=1, zero_index=2) -> QuantParams:
        scale = self.constant(node, scale_index, "scale")
        zero_point = self.optional_constant(node, zero_index, np.zeros((), dtype=np.uint8))
        if np.size(scale) != 1 or np.size(zero_point) != 1:
            raise UndenseError(f"{where(node)}: per-channel activation quantization is not supported; "
                               "activations are quantized per tensor")
        if zero_point.dtype not in (np.int8, np.uint8):
            raise UndenseError(f"{where(node)}: {zero_point.dtype} activations are not supported; use int8 or uint8")
        return QuantParams(float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0]), 8,
                           zero_point.dtype == np.int8)

    def QLinearMatMul(self, node):
        x = self.activation(node, 0)
        self._fix(node, x, self._params(node, 1, 2))
        codes = self.constant(node, 3, "weight B")
        # b_scale and b_zero_point are per tensor or per output column (ONNX's only per-channel form here)
        weight = self._quantized(node, codes, self.constant(node, 4, "weight scale"),
                                 self.constant(node, 5, "weight zero point"), 1)
        weight_value, quantized = self._imported_weight(node, weight, rows_axis=1)
        self.add_dense(node, x, weight_value, **quantized)
        self.fixed_quant[node.output[0]] = self._params(node, 6, 7)

    def MatMulInteger(self, node):
        x = self.activation(node, 0)
        a_zero = self.optional_constant(node, 2, np.zeros((), dtype=np.uint8))
        if np.size(a_zero) != 1:
            raise UndenseError(f"{where(node)}: a zero point per input row is not supported; "
                               "give one zero point for the whole input")
        self._fix(node, x, QuantParams(1.0, int(a_zero.reshape(-1)[0]), 8, a_zero.dtype == np.int8))
        codes = self.constant(node, 1, "weight B")
        b_zero = self.optional_constant(node, 3, np.zeros((), dtype=codes.dtype))
        weight = self._quantized(node, codes, np.ones(()), b_zero, 1)
        weight_value, quantized = self._imported_weight(node, weight, rows_axis=1)
        self.add_dense(node, x, weight_value, **quantized)
        self.fixed_quant[node.output[0]] = RAW_ACCUMULATOR

    def folds(self, node, constants) -> bool:
        """A node whose inputs are all constants is computed at import (except the (de)quantizers kept as they are)."""
        return node.op_type == "Constant" or (all(i in constants for i in node.input if i)
                                              and node.op_type not in NOT_FOLDED)

    def check_ops(self):
        """The first node of an unsupported op or domain, before anything else is said about the graph."""
        constants = set(self.constants)
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                hint = ("; onnxruntime's quantizer writes these in its QOperator format: quantize with "
                        "quant_format=QuantFormat.QDQ instead") if node.domain == "com.microsoft" else ""
                raise UndenseError(f"{where(node)}: operator domain '{node.domain}' is not supported{hint}; "
                                   f"supported (default domain): {SUPPORTED}")
            if node.op_type == "DynamicQuantizeLinear":
                raise UndenseError(f"{where(node)}: dynamic quantization computes its scales at run time, which "
                                   "fixed-point hardware cannot; quantize statically (onnxruntime's quantize_static, "
                                   "QDQ format) or compile the float model")
            if self.folds(node, constants) or node.op_type == "Shape" or (
                    node.op_type == "DequantizeLinear" and node.input[0] in constants):
                constants.update(node.output)  # dequantized weight codes are constants too
            elif node.op_type not in (*ACTIVATIONS, *ALIASES, *OPS):
                raise UndenseError(f"{where(node)}: unsupported op; supported: {SUPPORTED}")

    def run(self) -> Graph:
        self.check_ops()
        if len(self.graph.input) - len([i for i in self.graph.input if i.name in self.constants]) != 1 \
                or len(self.graph.output) != 1:
            raise UndenseError("the model must have exactly one input and one output "
                               f"(it has {len(self.graph.input)} and {len(self.graph.output)})")
        graph_input = next(i for i in self.graph.input if i.name not in self.constants)
        self.sizes[graph_input.name] = self.per_sample_size(graph_input.name)
        self.known[graph_input.name] = self.per_sample_shape(graph_input.name)
        input_type = graph_input.type.tensor_type.elem_type
        for node in self.graph.node:
            if self.folds(node, self.constants):
                self.fold_constant(node)
            elif node.op_type == "Shape":
                self.fold_shape(node)
            elif node.op_type in ACTIVATIONS:
                self.activation_op(node)
            elif node.op_type in ALIASES:
                self.alias_op(node)
            elif node.op_type in OPS:
                getattr(self, node.op_type)(node)
            else:
                raise UndenseError(f"{where(node)}: unsupported op; supported: {SUPPORTED}")
        output = self.graph.output[0]
        if output.name in self.upsampled and output.name not in self.sizes:
            self.materialize_upsampling(output.name)
        output_tensor = self.tensor(output.name)
        if output_tensor not in self.sizes or output_tensor == graph_input.name:
            raise UndenseError(f"graph output '{output.name}' is not computed by any supported node")
        return Graph(
            input=graph_input.name, output=output_tensor, sizes=self.sizes, nodes=tuple(self.nodes),
            output_shape=self.shape_of(output.name), fixed_quant=self.fixed_quant,
            input_is_integer=input_type != onnx.TensorProto.FLOAT,
            output_is_integer=output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT,
            names={"input": graph_input.name, "output": output.name},
            shapes={tensor: self.known[tensor] for tensor in self.sizes},
            condition_classes=condition_classes(self.metadata, self.sizes[graph_input.name]),
        )

    def fold_shape(self, node):
        """Shape of an activation: its per-sample shape after a batch of SHAPE_BATCH."""
        name = node.input[0]
        sample = np.zeros((SHAPE_BATCH, *self.shape_of(name, node)), dtype=np.float32)
        self.constants[node.output[0]] = ReferenceEvaluator(node).run(None, {name: sample})[0]

    def fold_constant(self, node):
        try:
            values = ReferenceEvaluator(node).run(None, {i: self.constants[i] for i in node.input if i})
        except Exception as error:
            raise UndenseError(f"{where(node)}: cannot fold this constant expression ({_first_line(error)})") from None
        self.constants.update(zip(node.output, values, strict=True))


OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose", "Resize", "Add", "Mul", "BatchNormalization", "QuantizeLinear",
       "DequantizeLinear", "QLinearMatMul", "MatMulInteger")


def import_onnx(source: str | Path | onnx.ModelProto) -> Graph:
    """An ONNX model (path or ModelProto) as a float IR graph."""
    model = load_model(source)
    with np.errstate(all="ignore"):  # damaged numbers become NaN or infinity, which check_graph names
        graph = _Importer(model).run()
    check_graph(graph)
    return graph
