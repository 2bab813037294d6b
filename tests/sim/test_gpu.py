"""The modelled GPU baseline: the roofline by hand."""
import numpy as np
import pytest

import undense
from undense.runtime.synthetic import mlp
from undense.sim import gpu

SPEC = {"fp16_tflops": {"value": 1.0}, "memory_gbs": {"value": 1.0}, "launch_us": {"value": 10.0},
        "idle_w": {"value": 10.0}, "max_w": {"value": 100.0}}


@pytest.fixture(scope="module")
def small():
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    return undense.compile(mlp([16, 64], ["Relu"], density=0.3), calibration=x)


def test_roofline_by_hand(small):
    gemm = max(2 * 16 * 64 / 1e12, 2 * (16 * 64 + 64 + 16 + 64) / 1e9)  # memory-bound: the weights
    relu = max(64 / 1e12, 2 * 2 * 64 / 1e9)
    busy = gemm + relu
    seconds = busy + 2 * 10e-6  # two kernels launched
    run = gpu.batch_energy(small.graph, SPEC, 1)
    assert run["seconds"] == pytest.approx(seconds)
    assert run["j_per_image"] == pytest.approx(10.0 * seconds + 90.0 * busy)


def test_a_bigger_batch_spreads_the_launches_and_the_idle_power(small, monkeypatch):
    monkeypatch.setattr(gpu, "gpus", lambda: {"test": SPEC})
    result = gpu.modelled_baseline(small.graph, "test")
    assert result["source"] == "model" and result["best_batch"] > 1
    assert result["j_per_image_best"] < result["j_per_image_batch1"]
    assert result["j_per_image_best"] == min(run["j_per_image"] for run in result["batches"])


def test_every_gpu_figure_names_its_source():
    for name, spec in gpu.gpus().items():
        for field in ("fp16_tflops", "int8_tops", "memory_gbs", "launch_us", "idle_w", "max_w"):
            assert spec[field]["value"] > 0, (name, field)
            assert len(spec[field]["source"]) > 20, (name, field)
        assert spec["idle_w"]["value"] < spec["max_w"]["value"]
