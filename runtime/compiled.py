"""A compiled model on the host side: compile, save, load, and run it on a backend."""
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from undense.compiler import builddir, golden
from undense.compiler.ir import QGraph
from undense.compiler.report import compile_report
from undense.compiler.targets import DEFAULT_TARGET, Target
from undense.errors import UndenseError
from undense.runtime.latents import random_latents

if TYPE_CHECKING:
    import onnx

BACKENDS = ("golden", "rtl")
NOT_NUMBERS = {"U": "text", "S": "bytes", "O": "Python objects", "b": "booleans", "c": "complex numbers"}
NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Compiled:
    graph: QGraph
    target: Target
    report: dict
    directory: Path | None = None

    def run(self, x: np.ndarray, backend: str = "golden") -> np.ndarray:
        """The model on a batch of inputs shaped [N, features...], computed by `backend`."""
        if backend not in BACKENDS:
            raise UndenseError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
        x = self._checked(x)
        if backend == "rtl":
            from undense.sim.simulate import mismatch_error

            result = self.simulate(x)
            if result.report["mismatches"]:
                raise mismatch_error(result.report)
            return golden.output_values(self.graph, result.codes)
        return golden.run(self.graph, x)

    def _checked(self, x: np.ndarray) -> np.ndarray:
        """x as the model can take it: numbers, [N, features] with N at least 1, finite; integer codes within
        the input's range where the model takes codes. UndenseError otherwise, before any work."""
        x = np.asarray(x)
        features = self.graph.sizes[self.graph.input]
        if x.dtype.kind not in "iuf":
            raise UndenseError(f"the inputs are {NOT_NUMBERS.get(x.dtype.kind, x.dtype.name)} ({x.dtype}), not "
                               f"numbers; the model takes numbers [N, {features}]")
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != features:
            raise UndenseError(f"input shaped {x.shape}; the model takes [N, {features}]")
        if len(x) == 0:
            raise UndenseError(f"an empty batch (input shaped {x.shape}); give at least one input [N, {features}]")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            image, feature = np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0]
            raise UndenseError(f"the inputs hold {int(np.isnan(x).sum()):,} NaN and {int(np.isinf(x).sum()):,} "
                               f"infinite values, the first at input {image}, feature {feature}; give finite numbers")
        if self.graph.input_is_integer:
            params, whole = self.graph.quant[self.graph.input], np.array_equal(x, np.round(x))
            if not whole or x.min() < params.qmin or x.max() > params.qmax:
                raise UndenseError(f"the model takes whole-number codes from {params.qmin} to {params.qmax}; these "
                                   f"inputs range from {x.min():g} to {x.max():g}{'' if whole else ', with fractions'}")
        return x

    def simulate(self, x: np.ndarray, wave: Path | None = None, progress=lambda step: None):
        """Cycle-accurate simulation of the RTL on x, with golden's output beside it (sim.simulate)."""
        from undense.sim.simulate import simulate

        return simulate(self.graph, self.report["predicted_cycles_per_image"], self._checked(x), self.directory,
                        wave, progress, self.target.family)

    def random_inputs(self, count: int, seed: int = 0, digit: int | None = None) -> np.ndarray:
        """Inputs to exercise the model with: N(0, I) floats (ending with a one-hot class for a class-conditional
        generator: `digit`'s, or the classes in turn), or uniform codes for an integer input."""
        features = self.graph.sizes[self.graph.input]
        if self.graph.input_is_integer:
            params = self.graph.quant[self.graph.input]
            return np.random.default_rng(seed).integers(params.qmin, params.qmax + 1, size=(count, features))
        return random_latents(features, count, seed, self.graph.condition_classes, digit)

    def save(self, directory: str | Path, source: dict | None = None) -> "Compiled":
        directory = builddir.write(self.graph, directory, self.target, self.report,
                                   source or {"path": None, "sha256": None})
        return Compiled(self.graph, self.target, self.report, directory)


def compile(model: "str | Path | onnx.ModelProto", output_dir: str | Path | None = None, *,
            bits: int = 8, layer_bits: dict[str, int] | None = None,
            calibration: np.ndarray | str | Path | None = None, target_name: str = DEFAULT_TARGET,
            images_per_second: float | None = None, progress=lambda step: None) -> Compiled:
    """Compile an ONNX model (path or ModelProto); with `output_dir`, also write the build dir.

    `target_name`: a target of compiler/data/targets.json, or "auto" for the smallest that holds the model at
    the best throughput (compiler.pipeline.choose_target; compile.json's target_choice says why).

    `calibration`: a .npy path, an array [N, features], or "normal:N" (N latents drawn from N(0, I)); by
    default the calib_latents.npy next to the model."""
    # imported here: onnx takes a second to import, which `undense rtl`, `sim` and the rest do not need
    from undense.compiler.pipeline import compile_graph
    result = compile_graph(model, calibration, bits, layer_bits, target_name, images_per_second, progress)
    options = {"bits": bits, "layer_bits": layer_bits or {}, "images_per_second": images_per_second}
    report = compile_report(result.graph, result.target, options, result.calibration)
    compiled = Compiled(result.graph, result.target, {**report, "target_choice": result.target_choice})
    if output_dir is None:
        return compiled
    progress("write")
    return compiled.save(output_dir, builddir.source_record(model))


def load(directory: str | Path) -> Compiled:
    graph, chosen_target, report = builddir.read(directory)
    return Compiled(graph, chosen_target, report, Path(directory))


def load_inputs(path: str | Path) -> np.ndarray:
    """Inputs from a .npy file (numpy.save), checked for its format only: Compiled.run checks the values."""
    path = Path(path)
    with open(path, "rb") as file:
        magic = file.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        raise UndenseError(f"{path} is not a .npy file (numpy.save's format); save the inputs with "
                           "numpy.save('x.npy', array) as [N, features]")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UndenseError(f"{path}: cannot read the inputs ({error}); save them with numpy.save('x.npy', array) "
                           "as numbers [N, features]") from None
