"""fold: choose the processing elements (PEs) of every layer, assign rows to them, predict cycles.

Cycle model (the contract the hardware is held to). A Dense layer with P PEs
spends one cycle per nonzero weight (at least one per row, to emit it) on each
PE, all PEs in parallel; its input arrives and its output leaves one value a
cycle, overlapped with the compute of the next and previous image. So per image

    cycles = max(largest PE load, in_features, out_features) + LAYER_OVERHEAD_CYCLES

and an Add layer takes features + LAYER_OVERHEAD_CYCLES. Layers form a pipeline:
the slowest layer sets the cycles per image.

Each PE owns one multiplier, so the PE budget is the target's DSP count. With
no throughput asked for, PEs go one at a time to the slowest layer while that
helps and the budget allows. With a target in images per second, each layer
gets the fewest PEs that reach it. Rows go to PEs largest first, each to the
least loaded PE, which balances the nonzeros.
"""
import heapq
from dataclasses import replace

import numpy as np

from undense.compiler.ir import Fold, QAdd, QDense, QGraph
from undense.compiler.targets import Target
from undense.errors import UndenseError

LAYER_OVERHEAD_CYCLES = 4


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


def weight_memory_bits(node: QDense) -> int:
    """Nonzero codes and their input indices, as the sparse unit stores them."""
    index_bits = max(1, int(np.ceil(np.log2(max(node.weight.in_features, 2)))))
    return node.weight.nnz * (node.weight_bits + index_bits)


def _check_memory(dense: list[QDense], target: Target) -> None:
    needed = sum(weight_memory_bits(n) for n in dense)
    if needed > target.memory_bits:
        largest = max(dense, key=weight_memory_bits)
        raise UndenseError(
            f"the weights need {needed:,} bits of on-chip memory and {target.name} has {target.memory_bits:,}; "
            f"the largest layer is '{largest.name}' ({weight_memory_bits(largest):,} bits): quantize to fewer "
            f"bits (--bits), prune more, or choose a bigger target")


def _balanced(layers: list[QDense | QAdd], budget: int) -> dict[str, int]:
    pe = {n.name: 1 for n in layers}
    cycles = {n.name: predict_cycles(n, 1) for n in layers}
    growable = {n.name: n for n in layers if isinstance(n, QDense)}
    while sum(pe.values()) < budget and growable:
        slowest = max(growable, key=lambda name: cycles[name])
        node = growable[slowest]
        faster = predict_cycles(node, pe[slowest] + 1) if pe[slowest] < node.out_features else cycles[slowest]
        if faster >= cycles[slowest] or cycles[slowest] < max(cycles.values()):
            break  # the slowest layer is stream-bound or an Add: more PEs would not help
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


def fold(graph: QGraph, target: Target, images_per_second: float | None = None) -> QGraph:
    layers = list(graph.nodes)
    dense = [n for n in layers if isinstance(n, QDense)]
    _check_memory(dense, target)
    if len(layers) > target.dsp:
        raise UndenseError(f"the model has {len(layers)} layers and {target.name} has {target.dsp} DSP "
                           f"multipliers, one needed per layer: choose a bigger target")
    if images_per_second is None:
        pe = _balanced(layers, target.dsp)
    else:
        if images_per_second <= 0:
            raise UndenseError(f"--images-per-second must be positive, not {images_per_second:g}")
        pe = _for_rate(layers, target.clock_mhz * 1e6 / images_per_second, images_per_second, target)
        if sum(pe.values()) > target.dsp:
            widest = max(pe, key=pe.get)
            raise UndenseError(
                f"{images_per_second:g} images/s needs {sum(pe.values())} multipliers ('{widest}' alone "
                f"{pe[widest]}) and {target.name} has {target.dsp}: ask for fewer images per second or "
                "choose a bigger target")
    folded = []
    for node in layers:
        p = pe[node.name]
        owner = assign_rows(_row_load(node), p) if isinstance(node, QDense) else np.zeros(1, dtype=np.int64)
        folded.append(replace(node, fold=Fold(p, owner, predict_cycles(node, p))))
    return graph.with_nodes(folded)
