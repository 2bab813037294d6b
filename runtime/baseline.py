"""`undense baseline --measure MODEL.onnx`: the float model on this machine's GPU, its energy read from NVML.

The model runs as given (fp32 for a float model) and, for a float model, in fp16: the precisions a GPU user would
deploy. Two runtimes run it. PyTorch (the default) takes the model through onnx2torch and runs it as a PyTorch user
would: eager (a kernel launch an op), captured once in a CUDA graph and replayed, and in fp16 compiled by
TorchInductor (elementwise work fused, replayed as a CUDA graph). onnxruntime runs it with its CUDA provider, the fp16
model made by its own converter. For every variant and batch size the model runs in a loop of at least a few seconds
(NVML's energy counter is coarse and, on A100/H100, samples only part of the time: Yang et al., arXiv:2312.02741),
between two readings of nvmlDeviceGetTotalEnergyConsumption (millijoules since the driver loaded). Measurements the
project has taken are shipped in sim/data/baselines/; `undense power` uses one when GPU and model match.
"""
import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from undense.errors import UndenseError
from undense.runtime.gpu_runtimes import RUNTIMES

SHIPPED = Path(__file__).parent.parent / "sim" / "data" / "baselines"
BATCHES = tuple(16 ** k for k in range(6))  # 1 to 1,048,576 images a batch
PLATEAU = 0.01  # a batch 16 times bigger that saves less than this share of the energy per image is the last tried
LOOP_SECONDS = 5.0


class BatchTooLarge(Exception):
    """A runtime's answer to a batch that does not fit in the GPU's memory."""


class EnergyCounter(Protocol):
    device: str
    driver: str

    def millijoules(self) -> int: ...


class NvmlCounter:
    """The total-energy counter, through NVML (nvidia-ml-py), of the GPU onnxruntime runs on (CUDA's device 0)."""

    def __init__(self):
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise UndenseError(f"NVML is not available ({error}): --measure needs an NVIDIA GPU and its driver") \
                from None
        self._nvml = pynvml
        self._handle = cuda_device_zero(pynvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.device = pynvml.nvmlDeviceGetName(self._handle)
        self.driver = pynvml.nvmlSystemGetDriverVersion()

    def millijoules(self) -> int:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)


def cuda_device_zero(nvml, visible: str | None):
    """NVML's handle on the GPU that CUDA calls device 0. NVML ignores CUDA_VISIBLE_DEVICES, so its first entry
    is looked up: a UUID as it is, an index in NVML's order (PCI bus order, which is CUDA's for identical GPUs or
    with CUDA_DEVICE_ORDER=PCI_BUS_ID). Unset, NVML's first GPU."""
    first = (visible or "").split(",")[0].strip()
    if first.startswith("GPU-"):
        return nvml.nvmlDeviceGetHandleByUUID(first)
    return nvml.nvmlDeviceGetHandleByIndex(int(first) if first.isdigit() else 0)


def measure_batches(run_batch: Callable[[int], None], counter: EnergyCounter, batches=BATCHES,
                    seconds: float = LOOP_SECONDS, clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """Joules per image for each batch size, energy and time over a loop of at least `seconds`, up to the batch
    past which the energy per image stops falling (PLATEAU) or that does not fit."""
    rows = []
    for batch in batches:
        if len(rows) > 1 and rows[-1]["j_per_image"] > rows[-2]["j_per_image"] * (1 - PLATEAU):
            break
        try:
            run_batch(batch)  # warm-up: kernels chosen, memory allocated
        except BatchTooLarge:
            break
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


def variant_figures(rows: list[dict]) -> dict:
    """Batch 1 and the batch with the fewest joules per image, of one variant's rows."""
    best = min(rows, key=lambda row: row["j_per_image"])
    first = next(row for row in rows if row["batch"] == 1)
    return {"j_per_image_batch1": first["j_per_image"], "j_per_image_best": best["j_per_image"],
            "best_batch": best["batch"], "batches": rows}


def summary(runs: dict[str, list[dict]], device: str, driver: str, model: Path, runtime: str,
            idle_w: float) -> dict:
    """The measurement as shipped in sim/data/baselines/: every variant's figures (`eager_fp32`, `compiled_fp16`...,
    the way it ran and its precision) under `variants`; the first keys, as before, the GPU at its best: the lowest
    batch-1 and best-batch figures of any variant, which `batch1_variant` and `best_variant` name."""
    variants = {variant: variant_figures(rows) for variant, rows in runs.items()}
    batch1 = min(variants, key=lambda variant: variants[variant]["j_per_image_batch1"])
    best = min(variants, key=lambda variant: variants[variant]["j_per_image_best"])
    return {"gpu": device, "driver": driver, "source": "measured", "runtime": runtime, "idle_w": idle_w,
            "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "model": model.name,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "j_per_image_batch1": variants[batch1]["j_per_image_batch1"],
            "j_per_image_best": variants[best]["j_per_image_best"], "best_batch": variants[best]["best_batch"],
            "batches": variants[best]["batches"], "batch1_variant": batch1, "best_variant": best,
            "variants": variants}


def measure(model: Path, counter: EnergyCounter | None = None, runtime: str = "torch",
            seconds: float = LOOP_SECONDS) -> dict:
    """The model at every batch size, every variant of `runtime`, on CUDA's device 0."""
    import onnx

    variants, description = RUNTIMES[runtime](onnx.load(model))
    counter = counter or NvmlCounter()
    for run in variants.values():
        run(1)  # the CUDA context and every variant are up before the idle reading
    idle_w = idle_power(counter, seconds)
    runs = {name: measure_batches(run, counter, seconds=seconds) for name, run in variants.items()}
    return summary(runs, counter.device, counter.driver, model, description, idle_w)


def shipped(gpu: str, model_sha256: str | None) -> dict | None:
    """A measurement the project has shipped for this GPU (its name contains `gpu`) and this model."""
    for path in sorted(SHIPPED.glob("*.json")):
        data = json.loads(path.read_text())
        if gpu.lower() in data["gpu"].lower() and data["model_sha256"] == model_sha256:
            return {**data, "file": path.name}
    return None
