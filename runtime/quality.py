"""Image quality of generated digits: an Inception-Score-style number from a shipped classifier.

The classifier is a small MLP trained on scikit-learn's digits (see
models/digits/train.py), stored as ONNX next to this module and run with
onnxruntime. For a batch of images x with class probabilities p(y|x):

    score = exp(E_x[KL(p(y|x) || p(y))]),   p(y) = E_x[p(y|x)]

It is 10 at best (every image confidently one digit, all ten digits equally
often) and 1 at worst.
"""
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from undense.errors import UndenseError
from undense.runtime.images import Layout, ValueRange

CLASSIFIER_PATH = Path(__file__).parent / "data" / "digits_classifier.onnx"
IMAGE_PIXELS = 64  # 8x8 digits, pixel values in [0, 1]
RANGE_SLACK = 0.01  # an output range this far beyond [0, 1] (a quantization step, say) still counts as [0, 1]


@dataclass(frozen=True)
class QualityScore:
    score: float
    class_shares: tuple[float, ...]  # share of the batch the classifier assigns to each digit 0..9

    @property
    def min_class_share(self) -> float:
        return min(self.class_shares)


@cache
def _classifier() -> ort.InferenceSession:
    return ort.InferenceSession(str(CLASSIFIER_PATH), providers=["CPUExecutionProvider"])


def class_probabilities(images: np.ndarray) -> np.ndarray:
    """p(y|x) for a batch of 8x8 images in [0, 1], shaped (N, 64) or (N, 8, 8)."""
    images = np.asarray(images, dtype=np.float32)
    if images[0].size != IMAGE_PIXELS:
        raise UndenseError(f"the quality score is defined for 8x8 digits ({IMAGE_PIXELS} pixels); "
                           f"these images have {images[0].size} pixels each")
    flat = images.reshape(len(images), IMAGE_PIXELS)
    session = _classifier()
    return session.run(None, {session.get_inputs()[0].name: flat})[0]


def unscored_reason(shape: Layout, values: ValueRange) -> str | None:
    """Why outputs of this layout and range get no quality score, or None where the classifier knows them: one
    8x8 greyscale image each, with values in [0, 1]."""
    if (shape.channels, shape.height, shape.width) != (1, 8, 8):
        return (f"the quality score is defined for 8x8 greyscale digits ({IMAGE_PIXELS} values in [0, 1]); "
                f"this model draws {shape}")
    if not values.known:
        return ("the quality score is defined for 8x8 digits with values in [0, 1]; this model does not bound its "
                "outputs (no Sigmoid, Tanh or Clip ends it), so their range is not known")
    if values.low < -RANGE_SLACK or values.high > 1 + RANGE_SLACK:
        return (f"the quality score is defined for 8x8 digits with values in [0, 1]; this model's outputs lie in "
                f"{values}")
    return None


def quality_score(images: np.ndarray) -> QualityScore:
    probs = class_probabilities(images).astype(np.float64)
    eps = 1e-12
    marginal = probs.mean(axis=0)
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(axis=1)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    shares = tuple(float(c) / len(images) for c in counts)
    return QualityScore(score=float(np.exp(kl.mean())), class_shares=shares)
