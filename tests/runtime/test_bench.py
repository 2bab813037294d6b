import os

import numpy as np
import pytest

import undense
from undense.runtime.bench import calibration_errors, cpu_baseline_figures, sweep_figures
from undense.runtime.float_model import random_latents, sample_float


def test_more_normal_samples_cut_the_worst_error_on_fresh_latents(generator_path):
    """The bundled 512 samples leave a few fresh latents saturating, with errors near a fifth of the output
    range; 4,096 samples of N(0, I) widen the ranges: fewer saturate and the worst error falls, while the mean
    stays well under 1% of the range. The worst error comes from the rare latents that saturate, so this takes
    10,000."""
    latents, floating = random_latents(16, 10_000, seed=77), sample_float(generator_path, 10_000, seed=77)
    default = calibration_errors(undense.compile(generator_path), latents, floating)
    wider = calibration_errors(undense.compile(generator_path, calibration="normal:4096"), latents, floating)
    assert wider["record_saturated_latents"] < default["record_saturated_latents"]
    assert wider["max_error_share_of_range"] < default["max_error_share_of_range"]
    assert max(default["mean_error_share_of_range"], wider["mean_error_share_of_range"]) < 0.005
    assert np.isclose(default["max_error_share_of_range"] * np.ptp(floating), default["max_abs_pixel_error"])


def test_mutation_figures_come_from_the_fuzz_run_as_a_command():
    from undense.runtime.bench import mutation_figures
    from undense.runtime.mutations import KINDS

    figures = mutation_figures(len(KINDS))
    assert figures["count"] == len(KINDS) == figures["exit_0"] + figures["exit_2"] + figures["failures"]
    assert set(figures["by_kind"]) == set(KINDS) and figures["seconds"] > 0


def test_the_cpu_baseline_times_every_batch_and_names_the_best(generator_path):
    figures = cpu_baseline_figures(generator_path, batches=(1, 64), seconds=0.05)
    assert [run["batch"] for run in figures["batches"]] == [1, 64]
    assert all(run["images_per_second"] > 0 for run in figures["batches"])
    best = max(figures["batches"], key=lambda run: run["images_per_second"])
    assert (figures["best_batch"], figures["best_images_per_second"]) == (best["batch"], best["images_per_second"])
    assert figures["batch1_images_per_second"] == figures["batches"][0]["images_per_second"]


@pytest.mark.slow
def test_the_sweep_runs_on_one_and_two_workers_from_an_empty_cache(generator_path, monkeypatch):
    from undense.runtime.sweep import Settings

    monkeypatch.setenv("UNDENSE_CACHE", "/nonexistent/kept")
    figures = sweep_figures(generator_path, ((8,), ("ice40-up5k", "ecp5-25k"), (None,)),
                                  Settings(images=32, synthesize=False))
    assert set(figures["workers"]) == {1, 2} and figures["speedup_2_over_1"] > 0
    assert all(run["summary"]["ran"] == 2 and run["summary"]["cached"] == 0 for run in figures["workers"].values())
    assert [point["label"] for point in figures["figures"]] == ["8 bits, ice40-up5k, fastest",
                                                                "8 bits, ecp5-25k, fastest"]
    assert os.environ["UNDENSE_CACHE"] == "/nonexistent/kept"  # put back as it was
