"""The inputs undense feeds a generator: latents z ~ N(0, I), seeded, and a class-conditional generator's
one-hot class after them. Kept apart from the float model (onnxruntime), which the compiler's process never loads."""
import numpy as np

from undense.compiler.condition import CONDITION_KEY
from undense.errors import UndenseError


def random_latents(size: int, count: int, seed: int, classes: int = 0, digit: int | None = None) -> np.ndarray:
    """Latents z ~ N(0, I), float32, reproducible from the seed; for a class-conditional generator (`classes` > 0)
    the last `classes` of the `size` inputs are the one-hot of `digit`, or of the classes in turn."""
    if digit is not None and not 0 <= digit < max(classes, 1):
        raise UndenseError(f"--digit {digit}: " + (f"the model takes classes 0 to {classes - 1}" if classes else
                           f"this model is not class-conditional (no {CONDITION_KEY} = one_hot:N in its metadata), "
                           "so it takes no --digit"))
    z = np.random.default_rng(seed).standard_normal((count, size - classes)).astype(np.float32)
    if not classes:
        return z
    picked = np.arange(count) % classes if digit is None else np.full(count, digit)
    return np.concatenate([z, np.eye(classes, dtype=np.float32)[picked]], axis=1)
