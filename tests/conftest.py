from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DIGITS_DIR = REPO / "models" / "digits"


def pytest_collection_modifyitems(items):
    """The tests marked `first` go first (in their order), so that the two workers of make test start the longest
    tests early and finish together: collected last, the README's own-model run (four minutes here) held one worker
    alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 real 8x8 digits as pixels in [0, 1], and their labels."""
    data = np.load(DIGITS_DIR / "real_digits.npz")
    return data["images"] / 16.0, data["labels"]


@pytest.fixture(scope="session")
def generator_path() -> Path:
    return DIGITS_DIR / "generator.onnx"
