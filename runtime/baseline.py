"""`undense baseline --measure MODEL.onnx`: the float model on this machine's GPU, its energy read from NVML.

The model runs as given (fp32 for a float model) and, for a float model, converted to fp16 by onnxruntime's own
converter (inputs and outputs kept fp32, so the same latents feed both): the precisions a GPU user would deploy.
For every precision and batch size the model runs in a loop of at least a few seconds (NVML's energy counter is
coarse and, on A100/H100, samples only part of the time: Yang et al., arXiv:2312.02741), between two readings of
nvmlDeviceGetTotalEnergyConsumption (millijoules since the driver loaded). Measurements the project has taken are
shipped in sim/data/baselines/; `undense power` uses one when GPU and model match.
"""
import hashlib
import json
import os
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


def precision_figures(rows: list[dict]) -> dict:
    """Batch 1 and the batch with the fewest joules per image, of one precision's rows."""
    best = min(rows, key=lambda row: row["j_per_image"])
    first = next(row for row in rows if row["batch"] == 1)
    return {"j_per_image_batch1": first["j_per_image"], "j_per_image_best": best["j_per_image"],
            "best_batch": best["batch"], "batches": rows}


def summary(runs: dict[str, list[dict]], device: str, driver: str, model: Path, runtime: str,
            idle_w: float) -> dict:
    """The measurement as shipped in sim/data/baselines/: every precision's figures under `precisions`; the
    first keys, as before, the GPU at its best: the lowest batch-1 and best-batch figures of any precision, which
    `batch1_precision` and `best_precision` name."""
    precisions = {precision: precision_figures(rows) for precision, rows in runs.items()}
    batch1 = min(precisions, key=lambda precision: precisions[precision]["j_per_image_batch1"])
    best = min(precisions, key=lambda precision: precisions[precision]["j_per_image_best"])
    return {"gpu": device, "driver": driver, "source": "measured", "runtime": runtime, "idle_w": idle_w,
            "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "model": model.name,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "j_per_image_batch1": precisions[batch1]["j_per_image_batch1"],
            "j_per_image_best": precisions[best]["j_per_image_best"], "best_batch": precisions[best]["best_batch"],
            "batches": precisions[best]["batches"], "batch1_precision": batch1, "best_precision": best,
            "precisions": precisions}


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv"}


def model_precision(model) -> str:
    """fp32 for a float model (every floating-point initializer fp32, no quantization op), else 'as given'."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
    quantized = any(node.op_type in QUANTIZED_OPS for node in model.graph.node)
    if quantized or any(init.data_type in floats - {TensorProto.FLOAT} for init in model.graph.initializer):
        return "as given"
    return "fp32"


def fp16_model(model) -> bytes:
    """The float model converted to fp16 by onnxruntime's converter, its inputs and outputs kept fp32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True).SerializeToString()


def cuda_runner(model: bytes) -> tuple[Callable[[int], None], str]:
    """A function that runs one batch of random latents on the GPU with onnxruntime's CUDA provider."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise UndenseError("onnxruntime has no CUDA provider here: --measure needs an NVIDIA GPU and "
                           "`pip install onnxruntime-gpu` in place of onnxruntime")
    session = onnxruntime.InferenceSession(model, providers=["CUDAExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise UndenseError("onnxruntime could not start its CUDA provider and fell back to the CPU: check the CUDA "
                           "and cuDNN libraries that onnxruntime-gpu needs (its warnings above name them)")
    feed = session.get_inputs()[0]
    features = int(np.prod([d for d in feed.shape[1:]]))
    inputs = {}

    def run(batch: int):
        if batch not in inputs:
            inputs[batch] = np.random.default_rng(0).standard_normal((batch, features)).astype(np.float32)
        session.run(None, {feed.name: inputs[batch]})

    tf32 = session.get_provider_options().get("CUDAExecutionProvider", {}).get("use_tf32")
    # use_tf32=1 lets cuBLAS run fp32 GEMMs on tensor cores in TF32 (10-bit mantissa): recorded, not changed
    return run, f"onnxruntime {onnxruntime.__version__} (CUDA{'' if tf32 is None else f', use_tf32={tf32}'})"


def measure(model: Path, counter: EnergyCounter | None = None, runner=cuda_runner) -> dict:
    """The model at every batch size, as given and (a float model) in fp16, on CUDA's device 0."""
    import onnx

    proto = onnx.load(model)
    precision = model_precision(proto)
    runners = {precision: runner(proto.SerializeToString())}
    if precision == "fp32":
        runners["fp16"] = runner(fp16_model(proto))
    counter = counter or NvmlCounter()
    for run, _ in runners.values():
        run(1)  # the CUDA context and the sessions are up before the idle reading
    idle_w = idle_power(counter)
    runs = {precision: measure_batches(run, counter) for precision, (run, _) in runners.items()}
    return summary(runs, counter.device, counter.driver, model, runners[precision][1], idle_w)


def shipped(gpu: str, model_sha256: str | None) -> dict | None:
    """A measurement the project has shipped for this GPU (its name contains `gpu`) and this model."""
    for path in sorted(SHIPPED.glob("*.json")):
        data = json.loads(path.read_text())
        if gpu.lower() in data["gpu"].lower() and data["model_sha256"] == model_sha256:
            return {**data, "file": path.name}
    return None
