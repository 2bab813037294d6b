from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DIGITS_DIR = REPO / "models" / "digits"


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 real 8x8 digits as pixels in [0, 1], and their labels."""
    data = np.load(DIGITS_DIR / "real_digits.npz")
    return data["images"] / 16.0, data["labels"]


@pytest.fixture(scope="session")
def generator_path() -> Path:
    return DIGITS_DIR / "generator.onnx"
