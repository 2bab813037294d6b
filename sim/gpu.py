"""The GPU baseline: the same model on a GPU, modelled from a spec table or measured (runtime/baseline.py).

The model is a roofline over the graph as a GPU runs the float ONNX model: every Dense layer is a dense GEMM
(the zeros multiplied too) and its activation a second kernel, every Add one kernel. A kernel takes
max(flops / peak, bytes / bandwidth) plus the launch latency; the board draws its idle power throughout and
up to its maximum while a kernel keeps compute or memory busy:

    energy = idle power x time + (maximum - idle power) x busy time

Batch 1 and the batch that minimises joules per image are both reported. Every figure of data/gpus.json
names its source.
"""
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from undense.compiler.ir import QDense, QGraph
from undense.errors import UndenseError

DATA = Path(__file__).parent / "data" / "gpus.json"
BYTES_PER_VALUE = 2  # fp16 weights and activations
BATCHES = tuple(2 ** k for k in range(17))  # 1 to 65,536 images a batch


@dataclass(frozen=True)
class Kernel:
    flops: float
    bytes: float


@cache
def gpus() -> dict[str, dict]:
    return {name: spec for name, spec in json.loads(DATA.read_text()).items() if not name.startswith("_")}


def gpu(name: str) -> dict:
    if name not in gpus():
        raise UndenseError(f"unknown GPU '{name}'; choose one of: {', '.join(gpus())}")
    return gpus()[name]


def kernels(graph: QGraph, batch: int) -> list[Kernel]:
    """The kernels one batch takes on a GPU, with the work each does."""
    work = []
    for node in graph.nodes:
        if isinstance(node, QDense):
            n_in, n_out = node.weight.in_features, node.out_features
            work.append(Kernel(2.0 * batch * n_in * n_out,
                               BYTES_PER_VALUE * (n_in * n_out + n_out + batch * (n_in + n_out))))
            if node.activation != "identity":
                work.append(Kernel(batch * n_out, 2 * BYTES_PER_VALUE * batch * n_out))
        else:
            work.append(Kernel(batch * node.features, 3 * BYTES_PER_VALUE * batch * node.features))
    return work


def batch_energy(graph: QGraph, spec: dict, batch: int) -> dict:
    """Time and energy of one batch from the roofline."""
    peak = spec["fp16_tflops"]["value"] * 1e12
    bandwidth = spec["memory_gbs"]["value"] * 1e9
    launch = spec["launch_us"]["value"] * 1e-6
    work = kernels(graph, batch)
    busy = sum(max(k.flops / peak, k.bytes / bandwidth) for k in work)
    seconds = busy + launch * len(work)
    idle, maximum = spec["idle_w"]["value"], spec["max_w"]["value"]
    joules = idle * seconds + (maximum - idle) * busy
    return {"batch": batch, "seconds": seconds, "j_per_image": joules / batch, "images_per_second": batch / seconds}


def modelled_baseline(graph: QGraph, name: str) -> dict:
    """Batch 1 and the most efficient batch of the roofline model on GPU `name`."""
    spec = gpu(name)
    runs = [batch_energy(graph, spec, batch) for batch in BATCHES]
    best = min(runs, key=lambda run: run["j_per_image"])
    return {"gpu": name, "source": "model", "j_per_image_batch1": runs[0]["j_per_image"],
            "j_per_image_best": best["j_per_image"], "best_batch": best["batch"], "batches": runs,
            "spec": spec}
