"""fold: choose the processing elements (PEs) of every layer, assign rows to them, predict cycles.

Cycle model (the contract the hardware is held to). A Dense layer with P PEs
spends one cycle per nonzero weight (at least one per row, to emit it) on each
PE, all PEs in parallel; its input arrives and its output leaves one value a
cycle, overlapped with the compute of the next and previous image. So per image

    cycles = max(largest PE load, in_features, out_features) + LAYER_OVERHEAD_CYCLES

and an Add layer takes features + LAYER_OVERHEAD_CYCLES. Layers form a pipeline:
the slowest layer sets the cycles per image.

What fits is the resource estimate's call (compiler/resources.py): DSPs (one
per PE, plus each layer's requantizer), block RAM, SPRAM and LUTs. With no throughput
asked for, PEs go one at a time to the slowest layer while that helps and the
design still fits. With a target in images per second, each layer
gets the fewest PEs that reach it. Rows go to PEs largest first, each to the
least loaded PE, which balances the nonzeros.
"""
import heapq
from dataclasses import replace

import numpy as np

from undense.compiler.ir import Fold, QAdd, QDense, QGraph
from undense.compiler.resources import LayerCost, layer_cost, total
from undense.compiler.targets import Target
from undense.errors import DoesNotFit, UndenseError

LAYER_OVERHEAD_CYCLES = 7  # the PEs start a cycle after the unit decides to, and their pipeline is five deep


def assign_rows(row_load: np.ndarray, pe: int) -> np.ndarray:
    """Longest-processing-time-first: the element of every row, balancing the summed load."""
    heap = [(0, element) for element in range(pe)]
    owner = np.zeros(len(row_load), dtype=np.int64)
    for row in sorted(range(len(row_load)), key=lambda r: (-row_load[r], r)):
        load, element = heapq.heappop(heap)
        owner[row] = element
        heapq.heappush(heap, (load + int(row_load[row]), element))
    return owner


def _row_load(node: QDense) -> np.ndarray:
    return np.maximum(node.weight.row_nnz, 1)


def predict_cycles(node: QDense | QAdd, pe: int) -> int:
    if isinstance(node, QAdd):
        return node.features + LAYER_OVERHEAD_CYCLES
    load = _row_load(node)
    busiest = np.bincount(assign_rows(load, pe), weights=load, minlength=pe).max()
    return int(max(busiest, node.weight.in_features, node.out_features)) + LAYER_OVERHEAD_CYCLES


RESOURCE_NAMES = {"dsp": "DSP multipliers", "bram": "block RAMs", "spram": "SPRAMs", "lut": "LUTs"}


def costs_for(graph: QGraph, pe: dict[str, int], target: Target) -> list[LayerCost]:
    return [layer_cost(graph, node, target.family, pe[node.name],
                       assign_rows(_row_load(node), pe[node.name]) if isinstance(node, QDense) else None)
            for node in graph.nodes]


def overflow(costs: list[LayerCost], target: Target) -> list[str]:
    """The resources the design needs more of than the target has (none when it fits)."""
    needed, available = total(costs), target.capacity()
    return [resource for resource in RESOURCE_NAMES if needed[resource] > available[resource]]


def too_big(costs: list[LayerCost], target: Target, resources: list[str], advice: str) -> DoesNotFit:
    needed, available = total(costs), target.capacity()
    shortfalls = " and ".join(f"{needed[r]:,} {RESOURCE_NAMES[r]} ({target.name} has {available[r]:,})"
                              for r in resources)
    biggest = max(costs, key=lambda cost: getattr(cost, resources[0]))
    return DoesNotFit(
        f"the model needs {shortfalls} on the {target.device}; layer '{biggest.name}' alone needs "
        f"{getattr(biggest, resources[0]):,} {RESOURCE_NAMES[resources[0]]}: {advice}")


def _balanced(graph: QGraph, target: Target) -> dict[str, int]:
    """The fastest folding that fits: PEs go one at a time to the slowest layer while that helps and fits."""
    layers = list(graph.nodes)
    pe = {n.name: 1 for n in layers}
    unfolded = costs_for(graph, pe, target)
    short = overflow(unfolded, target)
    if short:
        raise too_big(unfolded, target, short,
                      "it does not fit even with one processing element a layer")
    cycles = {n.name: predict_cycles(n, 1) for n in layers}
    growable = {n.name: n for n in layers if isinstance(n, QDense)}
    while growable:
        slowest = max(growable, key=lambda name: cycles[name])
        node = growable[slowest]
        faster = predict_cycles(node, pe[slowest] + 1) if pe[slowest] < node.out_features else cycles[slowest]
        if faster >= cycles[slowest] or cycles[slowest] < max(cycles.values()):
            break  # the slowest layer is stream-bound or an Add: more PEs would not help
        if overflow(costs_for(graph, {**pe, slowest: pe[slowest] + 1}, target), target):
            break  # one more PE would not fit
        pe[slowest] += 1
        cycles[slowest] = faster
    return pe


def _for_rate(layers: list[QDense | QAdd], cycles_per_image: float, rate: float, target: Target) -> dict[str, int]:
    pe = {}
    for node in layers:
        most = node.out_features if isinstance(node, QDense) else 1
        best = predict_cycles(node, most)
        if best > cycles_per_image:
            raise UndenseError(
                f"layer '{node.name}' cannot reach {rate:g} images/s at {target.clock_mhz:g} MHz: it needs "
                f"{best} cycles per image even fully parallel, so at most "
                f"{target.clock_mhz * 1e6 / best:,.0f} images/s; ask for fewer images per second")
        low, high = 1, most  # cycles fall as PEs are added: the fewest that are fast enough
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if predict_cycles(node, middle) <= cycles_per_image else (middle + 1, high)
        pe[node.name] = low
    return pe


def check_rate(images_per_second: float | None) -> None:
    if images_per_second is not None and images_per_second <= 0:
        raise UndenseError(f"--images-per-second must be positive, not {images_per_second:g}")


def fold(graph: QGraph, target: Target, images_per_second: float | None = None) -> QGraph:
    layers = list(graph.nodes)
    check_rate(images_per_second)
    if images_per_second is None:
        pe = _balanced(graph, target)
    else:
        pe = _for_rate(layers, target.clock_mhz * 1e6 / images_per_second, images_per_second, target)
        costs = costs_for(graph, pe, target)
        short = overflow(costs, target)
        if short:
            raise too_big(costs, target, short, f"{images_per_second:g} images/s needs {sum(pe.values())} "
                          "processing elements; ask for fewer images per second or choose a bigger target")
    folded = []
    for node in layers:
        p = pe[node.name]
        owner = assign_rows(_row_load(node), p) if isinstance(node, QDense) else np.zeros(1, dtype=np.int64)
        folded.append(replace(node, fold=Fold(p, owner, predict_cycles(node, p))))
    return graph.with_nodes(folded)
