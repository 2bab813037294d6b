"""The compiler's pipeline: import, the float passes, quantize, the integer passes, in this order."""
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from undense.compiler.calibration import CalibrationSet, coverage, is_spec, normal_calibration
from undense.compiler.frontend import import_onnx
from undense.compiler.ir import Graph, QGraph
from undense.compiler.passes.fold import fold
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import needs_calibration, quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.targets import DEFAULT_TARGET, Target, target, targets
from undense.compiler.verify import verify
from undense.errors import DoesNotFit, UndenseError

FLOAT_PASSES = (fuse,)
INTEGER_PASSES = (sparse_encode,)  # then fold, which needs the target
BUNDLED_CALIBRATION = "calib_latents.npy"  # a model's calibration set, next to its .onnx file


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


def compile_graph(source: str | Path | onnx.ModelProto, calibration: np.ndarray | str | Path | None = None,
                  bits: int = 8, layer_bits: dict[str, int] | None = None, target_name: str = DEFAULT_TARGET,
                  images_per_second: float | None = None,
                  progress: Callable[[str], None] = lambda step: None) -> tuple[QGraph, dict]:
    """The compiled graph and its calibration record (calibration.coverage)."""
    chosen_target = target(target_name)
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
        qgraph = fold(qgraph, chosen_target, images_per_second)
    except DoesNotFit as error:
        advice = what_would_fit(graph, qgraph, calibration, bits, layer_bits, chosen_target)
        raise DoesNotFit(f"{error}; {advice}") from None
    verify(qgraph, "fold")
    progress("calibration coverage")
    return qgraph, coverage(graph, qgraph, calibrated)


def what_would_fit(graph, encoded: QGraph, calibration, bits: int, layer_bits: dict[str, int] | None,
                   chosen: Target) -> str:
    """Advice for a model too big for `chosen`: the widest --bits that fits it, or the targets that take
    `encoded` (the model as quantized and encoded at `bits`)."""
    for fewer in range(bits - 1, 1, -1):
        try:
            fold(sparse_encode(quantize(graph, calibration, fewer, layer_bits)), chosen)
        except DoesNotFit:
            continue
        return f"at --bits {fewer} it fits"
    roomy = []
    for name, other in targets().items():
        try:
            fold(encoded, other)
        except DoesNotFit:
            continue
        roomy.append(name)
    fits_elsewhere = f"choose a bigger target ({', '.join(roomy)} takes it)" if roomy else "choose a bigger target"
    return f"no width from {bits - 1} bits down to 2 fits {chosen.name}: prune more or {fits_elsewhere}"
