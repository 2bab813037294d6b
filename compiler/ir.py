"""The compiler's IR: two node kinds before quantization, two after.

Every tensor is a flat vector per sample (the batch dimension is implicit), named
by a string, with its per-sample shape beside it: (features) or a feature map (C, H, W), flattened in ONNX's
order. Reshape, Flatten and Identity only rename tensors, so they leave no node. A convolution (Conv,
ConvTranspose, nearest Upsample + Conv) is a `Dense` layer too, whose weight is a kernel and whose `geometry`
(compiler/geometry.py) says which inputs each kernel weight joins to which outputs. Anything elementwise with
constants (bias, Mul by a constant, BatchNormalization) or a unary function (Relu, Sigmoid, ...) is a `Dense`
layer with a diagonal weight (on a feature map, a 1x1 kernel per channel) until the fuse pass folds it into the
layer before it.

Float graph:      Dense(x) = f(W x + b)                 Add(a, b) = a + b
Quantized graph:  QDense: integer W (sparse), bias, fixed-point requantization, clamp, optional table
                  QAdd:   two rescaled inputs summed, fixed-point requantization, clamp
"""
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse

from undense.compiler.functions import IDENTITY, Function
from undense.compiler.geometry import Conv2d
from undense.compiler.numbers import QuantParams


@dataclass(frozen=True, eq=False)
class Dense:
    name: str
    input: str
    output: str
    weight: np.ndarray  # float64, (out, in); with a geometry, its kernel (out channels, in / groups, kh, kw)
    bias: np.ndarray    # float64, (out,): one per output feature
    activation: Function = IDENTITY
    # A pre-quantized model fixes the weight codes and per-channel scales: imported, never re-derived.
    weight_codes: np.ndarray | None = None  # shaped as `weight`
    weight_scales: np.ndarray | None = None  # one per row, or with a geometry one per output channel
    weight_bits: int | None = None
    geometry: Conv2d | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def matrix(self) -> np.ndarray | scipy.sparse.csr_array:
        """The float weight as the (out, in) matrix it multiplies the input with."""
        return self.weight if self.geometry is None else self.geometry.matrix(self.weight)

    @property
    def channels(self) -> int:
        """Output channels: the rows of a plain layer, a convolution's kernels."""
        return self.weight.shape[0]

    @property
    def is_diagonal(self) -> bool:
        if self.geometry is not None:
            return self.geometry.is_channelwise
        w = self.weight
        return w.shape[0] == w.shape[1] and np.count_nonzero(w - np.diag(np.diag(w))) == 0

    def diagonal(self) -> np.ndarray:
        """A diagonal layer's weight per output feature."""
        return np.diag(self.weight) if self.geometry is None else self.per_feature(self.weight.reshape(-1))

    def per_feature(self, per_channel: np.ndarray) -> np.ndarray:
        """A value per output channel, repeated for every output feature of that channel."""
        return np.repeat(per_channel, len(self.bias) // self.channels)

    @property
    def is_elementwise_function(self) -> bool:
        """f(x) alone: an activation between two tensors of the model (say, between QDQ pairs)."""
        return (self.weight_codes is None and self.is_diagonal and bool(np.all(self.diagonal() == 1.0))
                and not np.any(self.bias))


@dataclass(frozen=True, eq=False)
class Add:
    name: str
    inputs: tuple[str, str]
    output: str


@dataclass(frozen=True)
class Graph:
    """A float graph: nodes in topological order, one input, one output."""

    input: str
    output: str
    sizes: dict[str, int]              # features per sample of every tensor
    nodes: tuple[Dense | Add, ...]
    output_shape: tuple[int, ...]      # per-sample shape the model's output had (e.g. (8, 8))
    # Quantization fixed by a pre-quantized model, by tensor name; used instead of calibration.
    fixed_quant: dict[str, QuantParams] = field(default_factory=dict)
    input_is_integer: bool = False     # the model takes integer codes, not floats
    output_is_integer: bool = False    # the model returns integer codes (or a raw accumulator)
    names: dict[str, str] = field(default_factory=dict)  # graph input/output names in the ONNX file
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-sample shape of every tensor
    condition_classes: int = 0  # a class-conditional generator: its input ends with a one-hot of this many

    def consumers(self, tensor: str) -> list[Dense | Add]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: str) -> Dense | Add | None:
        return next((n for n in self.nodes if n.output == tensor), None)

    def with_nodes(self, nodes) -> "Graph":
        return replace(self, nodes=tuple(nodes))


@dataclass(frozen=True, eq=False)
class SparseRows:
    """Nonzero weights row by row (CSR): row r holds values[row_ptr[r]:row_ptr[r+1]] at columns[...]."""

    values: np.ndarray   # int64 codes, never 0
    columns: np.ndarray  # int64 input index of each value
    row_ptr: np.ndarray  # int64, rows + 1 entries
    in_features: int

    @classmethod
    def from_csr(cls, matrix: scipy.sparse.csr_array) -> "SparseRows":
        return cls(matrix.data.astype(np.int64), matrix.indices.astype(np.int64), matrix.indptr.astype(np.int64),
                   matrix.shape[1])

    def csr(self) -> scipy.sparse.csr_array:
        return scipy.sparse.csr_array((self.values, self.columns, self.row_ptr),
                                      shape=(len(self.row_ptr) - 1, self.in_features))

    @classmethod
    def from_dense(cls, codes: np.ndarray) -> "SparseRows":
        rows, columns = np.nonzero(codes)
        row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=codes.shape[0]))])
        return cls(codes[rows, columns].astype(np.int64), columns.astype(np.int64),
                   row_ptr.astype(np.int64), codes.shape[1])

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((len(self.row_ptr) - 1, self.in_features), dtype=np.int64)
        rows = np.repeat(np.arange(len(self.row_ptr) - 1), np.diff(self.row_ptr))
        dense[rows, self.columns] = self.values
        return dense

    @property
    def row_nnz(self) -> np.ndarray:
        return np.diff(self.row_ptr)

    @property
    def nnz(self) -> int:
        return len(self.values)


@dataclass(frozen=True, eq=False)
class Fold:
    """How a layer is spread over processing elements (PEs), and the cycles the compiler predicts for it.

    A Dense layer is a grid of `lanes` (its input's lanes) x `groups` (its output's lanes) PEs; an Add has
    the lanes of its inputs and output, and one adder each. Cycles per image depend on the data: `cycles` is
    the mean over the calibration set, `cycles_p99` its 99th percentile.
    """

    lanes: int
    groups: int
    cycles: float
    cycles_p99: float
    placement: dict[str, str] = field(default_factory=dict)  # each memory of the unit -> where it goes

    @property
    def pe(self) -> int:
        return self.lanes * self.groups


@dataclass(frozen=True)
class Edge:
    """How a tensor travels between units: as events on `lanes` lanes, index i on lane i % lanes, or, where a
    convolution unit with several groups makes it, runs of `block` indices (a channel of its feature map) dealt
    to the lanes in turn (hw/dense_unit.lane_features), or with a `row_width` (the map's width) row by row across
    each lane's channels, for convolutions that read it through a rolling window (hw/conv_unit.py). An event's
    value is the code less `offset`; on a sparse edge a value of zero stays home (the offset is the zero point).
    """

    lanes: int
    sparse: bool
    offset: int
    block: int = 1
    row_width: int = 0


@dataclass(frozen=True, eq=False)
class QDense:
    """acc = W q_in + bias; pre = clamp(zp + rshift_round(acc * M, s)); out = table[pre] or pre.

    With `multiplier` None the output is the raw accumulator (MatMulInteger).
    """

    name: str
    input: str
    output: str
    weight: np.ndarray | SparseRows  # integer codes (out, in); SparseRows after sparse encoding
    weight_bits: int
    bias: np.ndarray                 # int64, accumulator domain, input zero point folded in
    acc_bits: int
    multiplier: np.ndarray | None    # int64 per output row
    shift: np.ndarray | None         # int64 per output row
    requant: QuantParams | None      # the code space requantization lands in (pre-activation)
    clamp: tuple[int, int] | None    # code range after requantization (ReLU and Clip narrow it)
    table: np.ndarray | None         # int64, 2^bits entries indexed by pre - requant.qmin
    activation: str
    fold: Fold | None = None
    geometry: Conv2d | None = None
    kernel: np.ndarray | None = None  # a convolution's weight codes as its kernel, `weight` being its matrix

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    @property
    def is_convolution(self) -> bool:
        """A convolution proper, which the convolution unit scatters (a per-channel scale of a feature map is a
        diagonal, which a Dense unit does)."""
        return self.geometry is not None and not self.geometry.is_channelwise

    @property
    def out_features(self) -> int:
        return len(self.bias)

    @property
    def out_rows(self) -> int:
        """What the unit's groups share out: its rows, a convolution's output channels (hw/conv_unit.py)."""
        return self.geometry.out_shape[0] if self.is_convolution else self.out_features

    @property
    def in_features(self) -> int:
        return self.weight.in_features if isinstance(self.weight, SparseRows) else self.weight.shape[1]

    def dense_codes(self) -> np.ndarray:
        return self.weight.to_dense() if isinstance(self.weight, SparseRows) else self.weight


@dataclass(frozen=True, eq=False)
class QAdd:
    """out = clamp(zp + rshift_round((a - za) * Ma + (b - zb) * Mb, s))."""

    name: str
    inputs: tuple[str, str]
    output: str
    zero_points: tuple[int, int]
    multipliers: tuple[int, int]
    shift: int
    requant: QuantParams
    features: int
    fold: Fold | None = None


@dataclass(frozen=True)
class QGraph:
    input: str
    output: str
    sizes: dict[str, int]
    nodes: tuple[QDense | QAdd, ...]
    quant: dict[str, QuantParams | None]  # per tensor; None for a raw accumulator output
    output_shape: tuple[int, ...]
    input_is_integer: bool = False
    output_is_integer: bool = False
    names: dict[str, str] = field(default_factory=dict)
    edges: dict[str, Edge] = field(default_factory=dict)  # per tensor, decided by the fold pass
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-sample shape of every tensor
    condition_classes: int = 0

    def consumers(self, tensor: str) -> list[QDense | QAdd]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: str) -> QDense | QAdd | None:
        return next((n for n in self.nodes if n.output == tensor), None)

    def with_nodes(self, nodes) -> "QGraph":
        return replace(self, nodes=tuple(nodes))

    def replace_edges(self, edges: dict[str, Edge]) -> "QGraph":
        return replace(self, edges=dict(edges))
