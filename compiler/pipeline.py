"""The compiler's pipeline: import, the float passes, quantize, the integer passes, in this order."""
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from undense.compiler.frontend import import_onnx
from undense.compiler.ir import QGraph
from undense.compiler.passes.fold import fold
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import needs_calibration, quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.targets import DEFAULT_TARGET, target
from undense.compiler.verify import verify
from undense.errors import UndenseError

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


def compile_graph(source: str | Path | onnx.ModelProto, calibration: np.ndarray | str | Path | None = None,
                  bits: int = 8, layer_bits: dict[str, int] | None = None, target_name: str = DEFAULT_TARGET,
                  images_per_second: float | None = None,
                  progress: Callable[[str], None] = lambda step: None) -> QGraph:
    chosen_target = target(target_name)
    progress("import")
    graph = import_onnx(source)
    verify(graph, "import")
    for float_pass in FLOAT_PASSES:
        progress(float_pass.__name__)
        graph = float_pass(graph)
        verify(graph, float_pass.__name__)
    if calibration is None and not isinstance(source, onnx.ModelProto) and needs_calibration(graph):
        bundled = Path(source).parent / BUNDLED_CALIBRATION
        calibration = bundled if bundled.is_file() else None
    if isinstance(calibration, str | Path):
        calibration = load_calibration(calibration)
    progress("quantize")
    qgraph = quantize(graph, calibration, bits, layer_bits)
    verify(qgraph, "quantize")
    for integer_pass in INTEGER_PASSES:
        progress(integer_pass.__name__)
        qgraph = integer_pass(qgraph)
        verify(qgraph, integer_pass.__name__)
    progress("fold")
    qgraph = fold(qgraph, chosen_target, images_per_second)
    verify(qgraph, "fold")
    return qgraph
