"""`undense baseline --measure`: the NVML measurement loop with a fake counter, shipped measurements, and the
error without a GPU."""
import json
import subprocess
import sys

import pytest

from undense.runtime import baseline


class FakeCounter:
    """An energy counter that a batch of B images moves by 10 + B millijoules."""
    device, driver = "Fake GPU 80GB", "999.1"

    def __init__(self):
        self.total = 0

    def millijoules(self):
        return self.total


def test_measurement_loop_reads_the_counter_around_the_runs(tmp_path):
    counter, now = FakeCounter(), [0.0]

    def run(batch):
        counter.total += 10 + batch

    def clock():  # every reading is half a second later
        now[0] += 0.5
        return now[0]

    rows = baseline.measure_batches(run, counter, batches=(1, 4), seconds=2.0, clock=clock)
    assert [row["runs"] for row in rows] == [3, 3]  # loop checks at 0.5, 1.0, 1.5 s after the start
    assert rows[0]["j_per_image"] == pytest.approx(11e-3)
    assert rows[1]["j_per_image"] == pytest.approx(14e-3 / 4)
    assert rows[1]["seconds"] == pytest.approx(2.5)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    result = baseline.summary(rows, counter.device, counter.driver, model, "fake", idle_w=40.0)
    assert result["best_batch"] == 4 and result["source"] == "measured" and result["idle_w"] == 40.0
    assert result["j_per_image_batch1"] == pytest.approx(11e-3)


def test_idle_power_is_energy_over_time_with_nothing_running():
    counter, now = FakeCounter(), [0.0]

    def wait(seconds):  # 30 W for as long as it waits
        now[0] += seconds
        counter.total += int(30_000 * seconds)

    assert baseline.idle_power(counter, 2.0, clock=lambda: now[0], wait=wait) == pytest.approx(30.0)


def test_a_shipped_measurement_matches_gpu_and_model(tmp_path, monkeypatch):
    monkeypatch.setattr(baseline, "SHIPPED", tmp_path)
    (tmp_path / "fake.json").write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "model_sha256": "abc"}))
    assert baseline.shipped("H100", "abc")["file"] == "fake.json"
    assert baseline.shipped("H100", "other model") is None
    assert baseline.shipped("A100", "abc") is None


def test_measure_without_a_gpu_says_what_is_missing(generator_path, tmp_path):
    done = subprocess.run([sys.executable, "-m", "undense", "baseline", "--measure", str(generator_path), "-o",
                           str(tmp_path / "b.json")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and "CUDA" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "b.json").exists()
