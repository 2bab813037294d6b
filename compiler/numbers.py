"""Number formats: quantization parameters, ONNX-style (de)quantization, fixed-point requantization.

The rules here define the bits; the golden executor and the hardware follow them.

- QuantizeLinear (ONNX): code = saturate(round_half_even(x / scale) + zero_point).
- Requantization is fixed point: a real multiplier m > 0 becomes an integer
  M with MULTIPLIER_BITS significant bits and a right shift s, m ~= M / 2^s;
  a value v is scaled as rshift_round(v * M, s).
- The one rounding rule of every right shift is QuantizeLinear's: round half to
  even. rshift_round(v, s) = q + (r > 2^(s-1) or (r == 2^(s-1) and q odd)), where
  q = v >> s is the arithmetic (flooring) shift and r = v - (q << s) its remainder.
  In hardware it is the half-up adder plus a sticky bit: are the s-1 bits below
  the half all zero?
"""
from dataclasses import dataclass

import numpy as np

MULTIPLIER_BITS = 15  # M in [2^14, 2^15): fits a signed 16-bit DSP operand
LARGEST_MULTIPLIER = 2.0 ** (MULTIPLIER_BITS - 2)  # real multipliers stay below this, so every shift is >= 1
SMALLEST_MULTIPLIER = 2.0 ** -32  # and above this, so every shift stays within int64 arithmetic


@dataclass(frozen=True)
class QuantParams:
    """Per-tensor affine quantization: real = scale * (code - zero_point)."""

    scale: float
    zero_point: int
    bits: int
    signed: bool = True

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """ONNX QuantizeLinear: round half to even, then saturate."""
        codes = np.rint(np.asarray(x, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(codes, self.qmin, self.qmax).astype(np.int64)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return (np.asarray(codes, dtype=np.float64) - self.zero_point) * self.scale

    def to_json(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point, "bits": self.bits, "signed": self.signed}

    @classmethod
    def from_json(cls, data: dict) -> "QuantParams":
        return cls(float(data["scale"]), int(data["zero_point"]), int(data["bits"]), bool(data["signed"]))


def activation_params(low: float, high: float, bits: int, min_scale: float = 0.0) -> QuantParams:
    """Asymmetric signed per-tensor parameters covering [low, high] and always 0 (exactly representable).

    `min_scale` keeps the step from being so fine that requantizing into it would need a
    multiplier beyond the fixed-point range (a dead ReLU layer is all zeros, for instance).
    """
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    span = high - low if high > low else 1.0  # a tensor that is always 0: any step will do
    scale = max(span / (qmax - qmin), min_scale)
    zero_point = int(np.clip(np.rint(qmin - low / scale), qmin, qmax))
    return QuantParams(scale, zero_point, bits)


def symmetric_weight_scales(weight: np.ndarray, bits: int) -> np.ndarray:
    """One scale per output channel (row), symmetric: codes in [-(2^(b-1)-1), 2^(b-1)-1]."""
    largest = np.abs(weight).max(axis=1)
    return np.where(largest > 0, largest, 1.0) / ((1 << (bits - 1)) - 1)


def quantize_weights(weight: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    limit = (1 << (bits - 1)) - 1
    return np.clip(np.rint(weight / scales[:, None]), -limit, limit).astype(np.int64)


def fixed_point(multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split real multipliers m > 0 into integers M (MULTIPLIER_BITS significant bits) and shifts s >= 1."""
    multiplier = np.asarray(multiplier, dtype=np.float64)
    if np.any(multiplier <= 0) or np.any(multiplier >= 2.0 ** (MULTIPLIER_BITS - 1)):
        raise ValueError(f"requantization multipliers must lie in (0, 2^{MULTIPLIER_BITS - 1})")
    exponent = np.floor(np.log2(multiplier)).astype(np.int64)
    shift = (MULTIPLIER_BITS - 1) - exponent
    mantissa = np.rint(multiplier * np.exp2(shift)).astype(np.int64)
    overflow = mantissa >= (1 << MULTIPLIER_BITS)  # rounding up to the next power of two
    mantissa = np.where(overflow, mantissa >> 1, mantissa)
    shift = np.where(overflow, shift - 1, shift)
    return mantissa, shift


def rshift_round(value: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """v / 2^s rounded half to even, s >= 1 (ONNX QuantizeLinear's rule)."""
    value = np.asarray(value, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    quotient = value >> shift
    remainder = value - (quotient << shift)
    half = np.int64(1) << (shift - 1)
    return quotient + ((remainder > half) | ((remainder == half) & (quotient & 1 == 1)))


def signed_bits(low: int, high: int) -> int:
    """Width of the smallest two's-complement register holding every integer in [low, high]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= low and high <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def index_bits(count: int) -> int:
    """Bits of an index into `count` things (at least one)."""
    return max(1, (count - 1).bit_length())
