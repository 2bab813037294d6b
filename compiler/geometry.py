"""Feature maps and the convolutions between them, as the sparse matrices they are.

A feature map (C, H, W) travels flattened in ONNX's order: feature c*H*W + y*W + x. A convolution is a linear
map between two flattened maps whose matrix repeats the kernel's weights at every position; `Conv2d.taps` lists
the (output feature, input feature, kernel weight) triples that matrix really has, so nothing downstream
multiplies by padding or by zeros a lowering inserted:

- Conv: output (o, y, x) meets input (i, y*s - pad + k) for every kernel row k that lands inside the input.
- ConvTranspose: a scatter, input (i, y) meets output (o, y*s - pad + k) for every k that lands inside the
  output; never a convolution over zeros inserted between the inputs.
- Nearest upsampling by a whole factor u before a Conv is addressing: the upsampled row p is input row p // u.
  Kernel rows that meet the same input row add into one weight (`matrix` sums them), so each input meets each
  output it touches once.

Kernels are kept as (out channels, in channels / groups, kh, kw) for both kinds (ConvTranspose's own layout,
(in, out / groups, kh, kw), is transposed at import).
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse


class Taps(NamedTuple):
    rows: np.ndarray     # output feature of each pair
    columns: np.ndarray  # input feature
    weights: np.ndarray  # flat index of the kernel weight joining them


@dataclass(frozen=True)
class Conv2d:
    in_shape: tuple[int, int, int]   # (C, H, W) of the input, before `upsample`
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # ONNX's order: top, left, bottom, right
    groups: int = 1
    transposed: bool = False
    upsample: tuple[int, int] = (1, 1)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.out_shape[0], self.in_shape[0] // self.groups, *self.kernel)

    @property
    def in_features(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_features(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def is_channelwise(self) -> bool:
        """One weight per channel at every position (a BatchNormalization or an activation on a feature map): a
        diagonal matrix."""
        return (self.in_shape == self.out_shape and self.kernel == (1, 1) and self.stride == (1, 1)
                and self.pads == (0, 0, 0, 0) and self.groups == self.in_shape[0] and not self.transposed
                and self.upsample == (1, 1))

    @classmethod
    def channelwise(cls, shape: tuple[int, int, int]) -> "Conv2d":
        return cls(shape, shape, (1, 1), groups=shape[0])

    @property
    def op(self) -> str:
        """What the layer is, for the report: conv, conv_transpose, upsample_conv, upsample or channelwise."""
        if self.transposed:
            return "conv_transpose"
        if self.upsample == (1, 1):
            return "channelwise" if self.is_channelwise else "conv"
        copies = self.kernel == (1, 1) and self.groups == self.in_shape[0] == self.out_shape[0]
        return "upsample" if copies else "upsample_conv"

    def axis_pairs(self, axis: int) -> np.ndarray:
        """(output position, input position, kernel position) along one spatial axis (0: rows, 1: columns)."""
        size_in, size_out = self.in_shape[1 + axis], self.out_shape[1 + axis]
        k, s, pad, u = self.kernel[axis], self.stride[axis], self.pads[axis], self.upsample[axis]
        if self.transposed:
            inputs, taps = np.meshgrid(np.arange(size_in), np.arange(k), indexing="ij")
            outputs = inputs * s - pad + taps
            keep = (outputs >= 0) & (outputs < size_out)
            return np.stack([outputs[keep], inputs[keep], taps[keep]], axis=1)
        outputs, taps = np.meshgrid(np.arange(size_out), np.arange(k), indexing="ij")
        upsampled = outputs * s - pad + taps
        keep = (upsampled >= 0) & (upsampled < size_in * u)
        return np.stack([outputs[keep], upsampled[keep] // u, taps[keep]], axis=1)

    def taps(self) -> Taps:
        (c_in, h_in, w_in), (c_out, h_out, w_out) = self.in_shape, self.out_shape
        kh, kw = self.kernel
        per_group_in, per_group_out = c_in // self.groups, c_out // self.groups
        ys, xs = self.axis_pairs(0), self.axis_pairs(1)
        # every (row pair, column pair): the spatial taps of one (out channel, in channel) pair
        y, x = (a.reshape(-1) for a in np.meshgrid(np.arange(len(ys)), np.arange(len(xs)), indexing="ij"))
        out_pos = ys[y, 0] * w_out + xs[x, 0]
        in_pos = ys[y, 1] * w_in + xs[x, 1]
        tap = ys[y, 2] * kw + xs[x, 2]
        out_channel = np.repeat(np.arange(c_out), per_group_in)
        in_channel = (out_channel // per_group_out) * per_group_in + np.tile(np.arange(per_group_in), c_out)
        kernel_base = np.arange(c_out * per_group_in) * (kh * kw)  # (o, i_in_group) flattened, times the taps
        return Taps((out_channel[:, None] * (h_out * w_out) + out_pos).reshape(-1),
                    (in_channel[:, None] * (h_in * w_in) + in_pos).reshape(-1),
                    (kernel_base[:, None] + tap).reshape(-1))

    def matrix(self, kernel: np.ndarray) -> scipy.sparse.csr_array:
        """The (out features, in features) matrix of `kernel` (float weights or integer codes): the kernel's
        nonzero weights at every pair they join, weights meeting the same pair summed, zeros left out."""
        kernel = np.asarray(kernel)
        if kernel.shape != self.kernel_shape:
            raise ValueError(f"a kernel shaped {kernel.shape} for a geometry that takes {self.kernel_shape}")
        taps = self.taps()
        values = kernel.reshape(-1)[taps.weights]
        keep = values != 0
        matrix = scipy.sparse.coo_array((values[keep], (taps.rows[keep], taps.columns[keep])),
                                        shape=(self.out_features, self.in_features)).tocsr()
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return matrix

    def dense_macs(self) -> int:
        """What a dense implementation multiplies per image: every kernel weight at every position of the map
        it slides over, padding and inserted zeros included (a ConvTranspose as zeros inserted between the
        inputs and convolved, a Conv after an upsampling over the upsampled map)."""
        c_out, h_out, w_out = self.out_shape
        return int(c_out * h_out * w_out * (self.in_shape[0] // self.groups) * self.kernel[0] * self.kernel[1])

    def to_json(self) -> dict:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "Conv2d":
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in data.items()})


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    return (size + pad_begin + pad_end - kernel) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                               output_padding: int) -> int:
    return stride * (size - 1) + output_padding + kernel - pad_begin - pad_end
