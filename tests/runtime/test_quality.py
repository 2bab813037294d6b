import re

import numpy as np
import pytest

from undense.errors import UndenseError
from undense.runtime.images import Layout, ValueRange
from undense.runtime.quality import class_probabilities, quality_score, unscored_reason


def test_classifier_knows_the_real_digits(real_digits):
    images, labels = real_digits
    probs = class_probabilities(images)
    assert probs.shape == (len(images), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(axis=1) == labels) > 0.95


def test_real_images_score_high_with_every_class(real_digits):
    images, _ = real_digits
    quality = quality_score(images)
    assert quality.score > 8.5
    assert quality.min_class_share > 0.08


def test_one_image_repeated_scores_one(real_digits):
    """One image repeated: p(y|x) equals p(y), so every KL term is 0 and the score exp(0)."""
    images, _ = real_digits
    quality = quality_score(np.repeat(images[:1], 50, axis=0))
    assert quality.score == pytest.approx(1.0)
    assert max(quality.class_shares) == 1.0


def test_noise_scores_low(real_digits):
    noise = np.random.default_rng(0).random((500, 64))
    assert quality_score(noise).score < quality_score(real_digits[0]).score / 2


def test_images_of_another_size_are_refused():
    with pytest.raises(UndenseError, match="defined for 8x8 or 28x28 digits; these images have 100 pixels"):
        quality_score(np.zeros((4, 10 * 10)))


@pytest.mark.parametrize("shape,values,reason", [
    (Layout(8, 8, 1), ValueRange(0.0, 1.0, "sigmoid"), None),
    (Layout(8, 8, 1), ValueRange(0.0, 1.004, "the output's quantization"), None),  # a step beyond 1
    (Layout(1, 64, 1), ValueRange(0.0, 1.0, "sigmoid"), "this model draws 1x64 greyscale strips"),
    (Layout(8, 8, 3), ValueRange(0.0, 1.0, "sigmoid"), "8x8 RGB tiles"),
    (Layout(8, 8, 1), ValueRange(-1.0, 1.0, "tanh"), r"outputs lie in \[-1, 1\] \(tanh\)"),
    (Layout(8, 8, 1), ValueRange(0.0, 0.9, "the batch's own values", known=False), "range is not known")])
def test_only_outputs_the_classifier_knows_are_scored(shape, values, reason):
    found = unscored_reason(shape, values)
    assert (found is None) if reason is None else re.search(reason, found)
