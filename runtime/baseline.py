"""`undense baseline --measure MODEL.onnx`: the float model on this machine's GPU, its energy read from NVML.

For every batch size the model runs in a loop of at least a few seconds (NVML's energy counter is coarse and,
on A100/H100, samples only part of the time: Yang et al., arXiv:2312.02741), between two readings of
nvmlDeviceGetTotalEnergyConsumption (millijoules since the driver loaded). Measurements the project has
taken are shipped in sim/data/baselines/; `undense power` uses one when GPU and model match.
"""
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from undense.errors import UndenseError

SHIPPED = Path(__file__).parent.parent / "sim" / "data" / "baselines"
BATCHES = (1, 16, 256, 4096)
LOOP_SECONDS = 5.0


class EnergyCounter(Protocol):
    device: str
    driver: str

    def millijoules(self) -> int: ...


class NvmlCounter:
    """GPU 0's total-energy counter through NVML (nvidia-ml-py)."""

    def __init__(self):
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise UndenseError(f"NVML is not available ({error}): --measure needs an NVIDIA GPU and its driver") \
                from None
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.device = pynvml.nvmlDeviceGetName(self._handle)
        self.driver = pynvml.nvmlSystemGetDriverVersion()

    def millijoules(self) -> int:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)


def measure_batches(run_batch: Callable[[int], None], counter: EnergyCounter, batches=BATCHES,
                    seconds: float = LOOP_SECONDS, clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """Joules per image for each batch size: energy and time over a loop of at least `seconds`."""
    rows = []
    for batch in batches:
        run_batch(batch)  # warm-up: kernels chosen, memory allocated
        start_mj, start, runs = counter.millijoules(), clock(), 0
        while clock() - start < seconds:
            run_batch(batch)
            runs += 1
        elapsed, joules = clock() - start, (counter.millijoules() - start_mj) / 1000
        rows.append({"batch": batch, "runs": runs, "seconds": elapsed, "joules": joules,
                     "j_per_image": joules / (runs * batch), "images_per_second": runs * batch / elapsed,
                     "average_power_w": joules / elapsed})
    return rows


def idle_power(counter: EnergyCounter, seconds: float = LOOP_SECONDS, clock: Callable[[], float] = time.perf_counter,
               wait: Callable[[float], None] = time.sleep) -> float:
    """Watts drawn with the model loaded and nothing running: the figure the roofline model has to assume."""
    start_mj, start = counter.millijoules(), clock()
    wait(seconds)
    return (counter.millijoules() - start_mj) / 1000 / (clock() - start)


def summary(rows: list[dict], device: str, driver: str, model: Path, runtime: str, idle_w: float) -> dict:
    best = min(rows, key=lambda row: row["j_per_image"])
    first = next(row for row in rows if row["batch"] == 1)
    return {"gpu": device, "driver": driver, "source": "measured", "runtime": runtime, "idle_w": idle_w,
            "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "model": model.name,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "j_per_image_batch1": first["j_per_image"], "j_per_image_best": best["j_per_image"],
            "best_batch": best["batch"], "batches": rows}


def cuda_runner(model: Path) -> tuple[Callable[[int], None], str]:
    """A function that runs one batch of random latents on the GPU with onnxruntime's CUDA provider."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise UndenseError("onnxruntime has no CUDA provider here: --measure needs an NVIDIA GPU and "
                           "`pip install onnxruntime-gpu` in place of onnxruntime")
    session = onnxruntime.InferenceSession(str(model), providers=["CUDAExecutionProvider"])
    feed = session.get_inputs()[0]
    features = int(np.prod([d for d in feed.shape[1:]]))
    inputs = {}

    def run(batch: int):
        if batch not in inputs:
            inputs[batch] = np.random.default_rng(0).standard_normal((batch, features)).astype(np.float32)
        session.run(None, {feed.name: inputs[batch]})

    return run, f"onnxruntime {onnxruntime.__version__} (CUDA)"


def measure(model: Path, counter: EnergyCounter | None = None) -> dict:
    run, runtime = cuda_runner(model)
    counter = counter or NvmlCounter()
    run(1)  # the CUDA context and the session are up before the idle reading
    idle_w = idle_power(counter)
    return summary(measure_batches(run, counter), counter.device, counter.driver, model, runtime, idle_w)


def shipped(gpu: str, model_sha256: str | None) -> dict | None:
    """A measurement the project has shipped for this GPU (its name contains `gpu`) and this model."""
    for path in sorted(SHIPPED.glob("*.json")):
        data = json.loads(path.read_text())
        if gpu.lower() in data["gpu"].lower() and data["model_sha256"] == model_sha256:
            return {**data, "file": path.name}
    return None
