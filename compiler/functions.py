"""Unary activation functions the compiler knows, as float references.

ReLU and Clip become a clamp of the requantized code; every other function is
a 2^n-entry table built from `apply` at compile time (see passes/quantize.py).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Function:
    kind: str            # identity | relu | leaky_relu | sigmoid | tanh | clip
    alpha: float = 0.0   # leaky_relu slope
    low: float = -np.inf  # clip bounds
    high: float = np.inf

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        match self.kind:
            case "identity":
                return x
            case "relu":
                return np.maximum(x, 0.0)
            case "leaky_relu":
                return np.where(x >= 0, x, self.alpha * x)
            case "sigmoid":
                with np.errstate(over="ignore"):  # exp(-x) overflows to inf far below 0, where sigmoid is 0
                    return 1.0 / (1.0 + np.exp(-x))
            case "tanh":
                return np.tanh(x)
            case "clip":
                return np.clip(x, self.low, self.high)
        raise ValueError(f"unknown function {self.kind}")

    @property
    def is_clamp(self) -> bool:
        """Exactly a clamp of the value, so no table is needed after requantization."""
        return self.kind in ("identity", "relu", "clip")


IDENTITY = Function("identity")
