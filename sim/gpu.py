"""The GPU baseline: the same model as a GPU user would deploy it at its best, modelled from a spec table
(runtime/baseline.py measures it instead).

Three ways to run the float model, each at fp16 (tensor cores) and at the model's own precision (fp32 for a float
ONNX model, on CUDA cores):

- `unfused`, kept for reference: every Dense a dense GEMM (the zeros multiplied too) and its activation a second
  kernel, every Add one kernel; each kernel reads its inputs from memory and writes its output back.
- `fused_per_layer`: one kernel a Dense, with bias and activation in the GEMM's epilogue. An Add is fused into the
  epilogue of the Dense that makes one of its inputs when nothing else reads that Dense's output (it then reads the
  Add's other input and writes the sum, after the activation); any other Add stays a kernel of its own.
- `fused_network`: one kernel for the whole network, a lower bound: the weights read once a batch, the activations
  kept on chip, only the network's input and output in memory. It needs the weights to fit in L2 and one image's
  live activations in one SM's shared memory (the batch is tiled over the SMs); a network that does not fit falls
  back to `fused_per_layer`, and says so.

A kernel is busy for max(flops / rate, bytes / bandwidth), the data sheet's rates divided by a derating (what a
kernel achieves). Launches are asynchronous, so a kernel longer than its launch hides the next launch and a kernel
shorter than its launch leaves the GPU waiting: it takes max(busy, launch). Its energy is

    idle power x max(0, launch - busy) + max(maximum power x compute time, memory-bound power x memory time)

so a compute-bound kernel draws the board's maximum, a memory-bound one the lower memory-bound power, and a
launch-bound one idle power while it waits. Every coefficient in data/gpus.json has low, value (typical) and high
with its source; the `low` figures take every coefficient at the end favourable to the GPU, `high` the other end.
"""
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from undense.compiler.ir import QAdd, QDense, QGraph
from undense.errors import UndenseError

DATA = Path(__file__).parent / "data" / "gpus.json"
PRECISIONS = {"fp16": (2, "fp16_tflops"), "fp32": (4, "fp32_tflops")}  # bytes per value, the rate it runs at
MODEL_PRECISION = "fp32"  # the precision of a float ONNX model, the only kind this baseline runs
VARIANTS = ("unfused", "fused_per_layer", "fused_network")
FUSED = ("fused_per_layer", "fused_network")
ENDS = ("low", "value", "high")
BATCHES = tuple(2 ** k for k in range(21))  # 1 to 1,048,576 images a batch
PLATEAU = 0.01  # the best batch is the smallest within 1% of the lowest energy per image over BATCHES


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


def _weights(graph: QGraph, node: QDense) -> int:
    """Weights and biases of a Dense, as a GPU stores them: dense, zeros included."""
    return graph.sizes[node.input] * node.out_features + node.out_features


def _activation_flops(node: QDense, batch: int) -> int:
    return batch * node.out_features if node.activation != "identity" else 0


def residual_fusions(graph: QGraph) -> dict[str, QAdd]:
    """The Adds fused into a Dense's epilogue, by the Dense's name: the Dense that makes one of the Add's inputs,
    the later one of two, when nothing but the Add reads its output."""
    position = {node.output: i for i, node in enumerate(graph.nodes)}
    fused = {}
    for add in (node for node in graph.nodes if isinstance(node, QAdd)):
        candidates = [graph.nodes[position[tensor]] for tensor in add.inputs if tensor in position]
        candidates = [node for node in candidates if isinstance(node, QDense) and node.name not in fused
                      and [n.name for n in graph.nodes if node.output in n.inputs] == [add.name]]
        if candidates:
            fused[max(candidates, key=lambda node: position[node.output]).name] = add
    return fused


def kernels(graph: QGraph, batch: int, variant: str, bytes_per_value: int) -> list[Kernel]:
    """The kernels one batch takes on a GPU, with the work each does; every variant does the same flops."""
    if variant == "fused_network":
        weights = sum(_weights(graph, node) for node in graph.nodes if isinstance(node, QDense))
        flops = sum(kernel.flops for kernel in kernels(graph, batch, "unfused", bytes_per_value))
        io = batch * (graph.sizes[graph.input] + graph.sizes[graph.output])
        return [Kernel(flops, bytes_per_value * (weights + io))]
    fusions = residual_fusions(graph) if variant == "fused_per_layer" else {}
    fused_adds = {add.name for add in fusions.values()}
    work = []
    for node in graph.nodes:
        if isinstance(node, QDense):
            n_in, n_out = graph.sizes[node.input], node.out_features
            gemm = Kernel(2.0 * batch * n_in * n_out,
                          bytes_per_value * (_weights(graph, node) + batch * (n_in + n_out)))
            if variant == "unfused":
                work.append(gemm)
                if node.activation != "identity":
                    work.append(Kernel(batch * n_out, 2 * bytes_per_value * batch * n_out))
            else:
                residual = batch * n_out if node.name in fusions else 0
                work.append(Kernel(gemm.flops + _activation_flops(node, batch) + residual,
                                   gemm.bytes + bytes_per_value * residual))
        elif node.name not in fused_adds:
            work.append(Kernel(batch * node.features, 3 * bytes_per_value * batch * node.features))
    return work


def live_values(graph: QGraph) -> int:
    """The most activation values one image holds at once, running the network node by node."""
    made = {graph.input: -1} | {node.output: i for i, node in enumerate(graph.nodes)}
    last = {tensor: max([i for i, node in enumerate(graph.nodes) if tensor in node.inputs], default=made[tensor])
            for tensor in made}
    last[graph.output] = len(graph.nodes)
    return max(sum(graph.sizes[tensor] for tensor in made if made[tensor] <= i <= last[tensor])
               for i in range(len(graph.nodes)))


def off_chip(graph: QGraph, spec: dict, precision: str) -> str | None:
    """Why one kernel cannot keep this network on chip on this GPU, or None when it can."""
    bytes_per_value = PRECISIONS[precision][0]
    weights = bytes_per_value * sum(_weights(graph, node) for node in graph.nodes if isinstance(node, QDense))
    l2 = spec["l2_mb"]["value"] * 2 ** 20
    live = bytes_per_value * live_values(graph)
    shared = spec["shared_memory_per_sm_kb"]["value"] * 2 ** 10
    if weights > l2:
        return f"its {precision} weights ({weights / 2 ** 20:,.1f} MB) exceed the L2 cache ({l2 / 2 ** 20:g} MB)"
    if live > shared:
        return (f"one image's live {precision} activations ({live / 2 ** 10:,.1f} KB) exceed an SM's shared memory "
                f"({shared / 2 ** 10:g} KB)")
    return None


def coefficients(spec: dict, precision: str, end: str) -> dict:
    """Rates in flop/s and byte/s as kernels achieve them, launch in seconds, powers in watts, at one end."""
    rate = PRECISIONS[precision][1]
    return {"rate": spec[rate]["value"] * 1e12 / spec["compute_derating"][end],
            "bandwidth": spec["memory_gbs"]["value"] * 1e9 / spec["bandwidth_derating"][end],
            "launch": spec["launch_us"][end] * 1e-6, "idle": spec["idle_w"][end],
            "memory_bound": spec["memory_bound_w"][end], "maximum": spec["max_w"][end]}


def batch_energy(graph: QGraph, spec: dict, batch: int, variant: str = "fused_per_layer", precision: str = "fp16",
                 end: str = "value") -> dict:
    """Time and energy of one batch, the coefficients at `end` of their ranges."""
    if variant == "fused_network" and off_chip(graph, spec, precision):
        variant = "fused_per_layer"
    c = coefficients(spec, precision, end)
    seconds = joules = 0.0
    for kernel in kernels(graph, batch, variant, PRECISIONS[precision][0]):
        compute, memory = kernel.flops / c["rate"], kernel.bytes / c["bandwidth"]
        busy = max(compute, memory)
        seconds += max(busy, c["launch"])
        joules += c["idle"] * max(0.0, c["launch"] - busy) + max(c["maximum"] * compute, c["memory_bound"] * memory)
    return {"batch": batch, "seconds": seconds, "j_per_image": joules / batch, "images_per_second": batch / seconds}


def variant_figures(graph: QGraph, spec: dict, variant: str, precision: str) -> dict:
    """Joules per image at batch 1 and at the best batch, low, typical and high; the typical run at every batch.

    The best batch is the smallest whose typical figure is within PLATEAU of the lowest over BATCHES: past it a
    bigger batch only spreads one launch thinner. Low and high are taken at that batch too."""
    runs = {end: [batch_energy(graph, spec, batch, variant, precision, end) for batch in BATCHES] for end in ENDS}
    lowest = min(run["j_per_image"] for run in runs["value"])
    best = next(i for i, run in enumerate(runs["value"]) if run["j_per_image"] <= lowest * (1 + PLATEAU))
    figures = {"variant": variant, "precision": precision,
               "kernels_per_batch": len(kernels(graph, 1, variant, PRECISIONS[precision][0])),
               "batch1": {end: runs[end][0]["j_per_image"] for end in ENDS},
               "best": {**{end: runs[end][best]["j_per_image"] for end in ENDS}, "batch": BATCHES[best]},
               "batches": runs["value"]}
    reason = off_chip(graph, spec, precision) if variant == "fused_network" else None
    if reason:
        figures["kernels_per_batch"] = len(kernels(graph, 1, "fused_per_layer", PRECISIONS[precision][0]))
        figures["falls_back"] = f"priced as fused_per_layer: {reason}"
    return figures


def modelled_baseline(graph: QGraph, name: str) -> dict:
    """The GPU section of power.json: every variant at both precisions, and the GPU at its best.

    The first keys keep their meaning (typical figures): `j_per_image_best` is the fused variant with the lowest
    typical energy per image at its best batch (`best_variant`), `j_per_image_batch1` the fused variant lowest at
    batch 1 (`batch1_variant`); their ranges are that variant's low, value and high."""
    spec = gpu(name)
    variants = {f"{variant}_{precision}": variant_figures(graph, spec, variant, precision)
                for variant in VARIANTS for precision in PRECISIONS}
    fused = [key for key, figures in variants.items() if figures["variant"] in FUSED]
    best = min(fused, key=lambda key: variants[key]["best"]["value"])
    batch1 = min(fused, key=lambda key: variants[key]["batch1"]["value"])
    return {"gpu": name, "source": "model",
            "j_per_image_batch1": variants[batch1]["batch1"]["value"],
            "j_per_image_best": variants[best]["best"]["value"], "best_batch": variants[best]["best"]["batch"],
            "batches": variants[best]["batches"], "spec": spec,
            "model_precision": MODEL_PRECISION, "best_variant": best, "batch1_variant": batch1,
            "j_per_image_best_range": {end: variants[best]["best"][end] for end in ENDS},
            "j_per_image_batch1_range": {end: variants[batch1]["batch1"][end] for end in ENDS},
            "variants": {key: {k: v for k, v in figures.items() if k != "batches"}
                         for key, figures in variants.items()}}
