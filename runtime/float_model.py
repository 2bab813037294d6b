"""The float reference: an ONNX generator run as it is, with onnxruntime, on random latents."""
from pathlib import Path

import numpy as np
import onnxruntime as ort

from undense.errors import UndenseError


def _session(model_path: Path) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several private exception types for a bad file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UndenseError(f"{model_path}: onnxruntime cannot load it ({first_line}); "
                           "give a valid ONNX model file") from None


def latent_size(session: ort.InferenceSession, model_path: Path) -> int:
    (latent,) = session.get_inputs()
    if len(latent.shape) != 2 or not isinstance(latent.shape[1], int):
        raise UndenseError(f"{model_path}: input '{latent.name}' has shape {latent.shape}; "
                           "a generator takes latents shaped [batch, size] with a fixed size")
    return latent.shape[1]


def random_latents(size: int, count: int, seed: int) -> np.ndarray:
    """Latents z ~ N(0, I), float32, reproducible from the seed."""
    return np.random.default_rng(seed).standard_normal((count, size)).astype(np.float32)


def sample_float(model_path: str | Path, count: int, seed: int = 0) -> np.ndarray:
    """`count` images from the float model, one row of pixels per image."""
    model_path = Path(model_path)
    session = _session(model_path)
    latents = random_latents(latent_size(session, model_path), count, seed)
    return session.run(None, {session.get_inputs()[0].name: latents})[0].reshape(count, -1)
