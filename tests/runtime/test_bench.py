import numpy as np

import undense
from undense.runtime.bench import calibration_errors
from undense.runtime.float_model import random_latents, sample_float


def test_more_normal_samples_cut_the_worst_error_on_fresh_latents(generator_path):
    """The bundled 512 samples leave a few fresh latents saturating, with errors near a quarter of the output
    range; 4,096 samples of N(0, I) widen the ranges: fewer saturate, the worst error falls, the mean rises a
    little. Over 1,000 latents the worst error falls only where one of them saturates, so this takes 10,000."""
    latents, floating = random_latents(16, 10_000, seed=77), sample_float(generator_path, 10_000, seed=77)
    default = calibration_errors(undense.compile(generator_path), latents, floating)
    wider = calibration_errors(undense.compile(generator_path, calibration="normal:4096"), latents, floating)
    assert wider["record_saturated_latents"] < default["record_saturated_latents"]
    assert wider["max_error_share_of_range"] < default["max_error_share_of_range"]
    assert default["mean_abs_pixel_error"] < wider["mean_abs_pixel_error"] < 0.02
    assert np.isclose(default["max_error_share_of_range"] * np.ptp(floating), default["max_abs_pixel_error"])
