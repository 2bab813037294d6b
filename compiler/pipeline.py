"""The compiler's pipeline: import, the float passes, quantize, the integer passes, in this order."""
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx

from undense.compiler.calibration import CalibrationSet, coverage, is_spec, normal_calibration
from undense.compiler.frontend import import_onnx
from undense.compiler.ir import Graph, QGraph
from undense.compiler.passes.edges import edges
from undense.compiler.passes.fold import check_rate, fold
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import needs_calibration, quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.targets import AUTO_TARGET, DEFAULT_TARGET, Target, by_size, target, targets
from undense.compiler.verify import verify
from undense.errors import DoesNotFit, UndenseError

FLOAT_PASSES = (fuse,)
INTEGER_PASSES = (sparse_encode, edges)  # then fold, which needs the target
BUNDLED_CALIBRATION = "calib_latents.npy"  # a model's calibration set, next to its .onnx file
# `--target auto` without a rate takes a part that reaches the best rate within this share: the rate is a mean
# over the calibration set, and a bigger part for a fraction of a percent of it would cost more than it gives
RATE_TOLERANCE = 0.01


def load_calibration(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UndenseError(f"{path}: cannot read calibration inputs ({error}); give a .npy array [N, features]") \
            from None


def calibration_set(source: str | Path | onnx.ModelProto, calibration: np.ndarray | str | Path | None,
                    graph: Graph) -> CalibrationSet:
    """The calibration samples and where they came from: a .npy file, `normal:N` (a string, not a Path), an
    array, or with none given the model's bundled calib_latents.npy where it needs one."""
    if calibration is None:
        bundled = None if isinstance(source, onnx.ModelProto) else Path(source).parent / BUNDLED_CALIBRATION
        if bundled is not None and bundled.is_file() and needs_calibration(graph):
            return CalibrationSet(load_calibration(bundled), "bundled", str(bundled))
        return CalibrationSet(None, "none")
    if isinstance(calibration, str | Path):
        if not Path(calibration).exists():
            if isinstance(calibration, str) and is_spec(calibration):
                return normal_calibration(calibration, graph)
            raise UndenseError(f"{calibration}: no such calibration file; give a .npy array [N, features] or "
                               "normal:N (N samples of N(0, I))")
        return CalibrationSet(load_calibration(calibration), "file", str(calibration))
    return CalibrationSet(np.asarray(calibration), "array")


class CompiledGraph(NamedTuple):
    graph: QGraph
    calibration: dict    # calibration.coverage's record
    target: Target       # the one asked for, or the one `auto` picked
    target_choice: dict  # compile.json's target_choice: what was asked, what was picked and why


def compile_graph(source: str | Path | onnx.ModelProto, calibration: np.ndarray | str | Path | None = None,
                  bits: int = 8, layer_bits: dict[str, int] | None = None, target_name: str = DEFAULT_TARGET,
                  images_per_second: float | None = None,
                  progress: Callable[[str], None] = lambda step: None) -> CompiledGraph:
    """The compiled graph, its calibration record and its target (`target_name`, or with "auto" the one
    choose_target picks)."""
    chosen_target = None if target_name == AUTO_TARGET else target(target_name)
    check_rate(images_per_second)
    progress("import")
    graph = import_onnx(source)
    verify(graph, "import")
    for float_pass in FLOAT_PASSES:
        progress(float_pass.__name__)
        graph = float_pass(graph)
        verify(graph, float_pass.__name__)
    calibrated = calibration_set(source, calibration, graph)
    calibration = calibrated.samples
    progress("quantize")
    qgraph = quantize(graph, calibration, bits, layer_bits)
    verify(qgraph, "quantize")
    for integer_pass in INTEGER_PASSES:
        progress(integer_pass.__name__)
        qgraph = integer_pass(qgraph)
        verify(qgraph, integer_pass.__name__)
    progress("fold")
    try:
        if chosen_target is None:
            qgraph, chosen_target, choice = choose_target(qgraph, images_per_second, calibration)
        else:
            qgraph = fold(qgraph, chosen_target, images_per_second, calibration)
            choice = {"asked": target_name, "picked": target_name}
    except DoesNotFit as error:
        biggest = chosen_target or by_size()[-1]
        advice = what_would_fit(graph, qgraph, calibration, bits, layer_bits, biggest)
        raise DoesNotFit(f"{error}; {advice}") from None
    verify(qgraph, "fold")
    progress("calibration coverage")
    return CompiledGraph(qgraph, coverage(graph, qgraph, calibrated), chosen_target, choice)


def reached_rate(folded: QGraph, chosen: Target) -> float:
    """The images per second a folded graph reaches on `chosen`: its clock over the slowest layer's cycles."""
    return chosen.clock_mhz * 1e6 / max(node.fold.cycles for node in folded.nodes)


def choose_target(encoded: QGraph, rate: float | None = None,
                  samples: np.ndarray | None = None) -> tuple[QGraph, Target, dict]:
    """`--target auto`: the smallest target (Target.size) that holds the design at the throughput asked for
    (`rate`, images per second) or, with none asked, at the highest throughput any target gives it (within
    RATE_TOLERANCE), so that the pick costs no speed. Each target is tried as if it had been named; the record
    says how each fared."""
    tried, errors = [], {}
    for candidate in by_size():
        entry = {"target": candidate.name, "device": candidate.device, "clock_mhz": candidate.clock_mhz}
        try:
            folded = fold(encoded, candidate, rate, samples)
        except UndenseError as error:  # too big for it, or too slow at its clock for the rate asked
            errors[candidate.name] = error
            tried.append(({**entry, "fits": False, "fast_enough": False, "why": str(error)}, None))
            continue
        tried.append(({**entry, "fits": True, "images_per_second": round(reached_rate(folded, candidate), 1)},
                      folded))
    holding = [entry for entry, folded in tried if folded is not None]
    if not holding:
        biggest = by_size()[-1]
        error = errors[biggest.name]
        at = "" if rate is None else f" at {rate:g} images/s"
        raise type(error)(f"--target auto: no target holds the model{at} ({', '.join(errors)}); on the largest, "
                          f"{biggest.name}: {error}")
    needed = rate or max(entry["images_per_second"] for entry in holding)
    for entry in holding:
        entry["fast_enough"] = entry["images_per_second"] >= needed * (1 - (1e-9 if rate else RATE_TOLERANCE))
        if not entry["fast_enough"]:
            entry["why"] = (f"fits, but folded for it the design reaches {entry['images_per_second']:,.0f} "
                            f"images/s, less than the {needed:,.0f} a larger target gives it")
    entry, folded = next((entry, folded) for entry, folded in tried if entry["fast_enough"])
    rule = (f"the smallest target that reaches the {rate:g} images/s asked for" if rate is not None else
            "the smallest target that holds the design at the highest throughput any target gives it "
            f"({needed:,.0f} images/s)")
    return folded, targets()[entry["target"]], {"asked": AUTO_TARGET, "picked": entry["target"], "rule": rule,
                                                "candidates": [entry for entry, _ in tried]}


def what_would_fit(graph, encoded: QGraph, calibration, bits: int, layer_bits: dict[str, int] | None,
                   chosen: Target) -> str:
    """Advice for a model too big for `chosen`: the widest --bits that fits it, or the targets that take
    `encoded` (the model as quantized and encoded at `bits`)."""
    for fewer in range(bits - 1, 1, -1):
        try:
            fold(edges(sparse_encode(quantize(graph, calibration, fewer, layer_bits))), chosen, samples=calibration)
        except DoesNotFit:
            continue
        return f"at --bits {fewer} it fits"
    roomy = []
    for name, other in targets().items():
        try:
            fold(encoded, other, samples=calibration)
        except DoesNotFit:
            continue
        roomy.append(name)
    fits_elsewhere = (f" or choose a bigger target ({', '.join(roomy)} takes it)" if roomy else
                      "" if chosen == by_size()[-1] else " or choose a bigger target")
    return f"no width from {bits - 1} bits down to 2 fits {chosen.name}: prune more{fits_elsewhere}"
