"""`undense generate`: random latents through a compiled model on a backend, as a picture grid with its quality score.

How the outputs are drawn is decided from the build dir before any image is generated (`picture`): the layout
from the model's output shape (runtime/images.py), the value range from its last activation where that bounds
it (Sigmoid [0, 1], Tanh [-1, 1]), else from the codes its output quantization can reach (a ReLU's or Clip's
clamp, or the whole code range). The quality score is given only where the digit classifier knows the outputs
(8x8 or 28x28 greyscale in [0, 1], runtime/quality.py); otherwise generate.json says why not.

Images go through the backend in chunks, so a long run on the RTL shows its progress; DIR/generate.json records
what was generated, where the grid is, how it was drawn, and the score (the report shows them).
"""
from pathlib import Path

import numpy as np

from undense.compiler import builddir
from undense.compiler.ir import QGraph
from undense.runtime.compiled import Compiled
from undense.runtime.images import ACTIVATION_RANGES, Picture, ValueRange, layout, save_grid
from undense.runtime.quality import quality_score, unscored_reason

GENERATE_REPORT = "generate.json"
CHUNK = {"golden": 4096, "rtl": 512}  # images a backend call: a simulator run has a start-up cost


def output_range(graph: QGraph) -> ValueRange:
    """The real range of the model's output: its bounded activation's, else what its codes can reach."""
    last = next(node for node in graph.nodes if node.output == graph.output)
    activation = getattr(last, "activation", "identity")
    if activation in ACTIVATION_RANGES:
        return ValueRange(*ACTIVATION_RANGES[activation], activation)
    params = graph.quant[graph.output]
    if params is None:  # a raw accumulator: no range but the values themselves
        return ValueRange(0.0, 0.0, "the batch's own values", known=False)
    low, high = getattr(last, "clamp", None) or (params.qmin, params.qmax)
    if graph.output_is_integer:
        return ValueRange(float(low), float(high), "the output's codes")
    return ValueRange(*map(float, params.dequantize(np.array([low, high]))), "the output's quantization")


def picture(compiled: Compiled) -> Picture:
    """How the model's outputs are drawn; UndenseError for an output that is not a picture."""
    return Picture(layout(compiled.graph.output_shape), output_range(compiled.graph))


def generate(compiled: Compiled, count: int, backend: str, seed: int, advance=lambda images: None,
             digit: int | None = None) -> np.ndarray:
    """`count` images from N(0, I) latents (seeded; for a class-conditional model, of `digit`, or of every class in
    turn), one row of values each; `advance(n)` after every chunk."""
    latents = compiled.random_inputs(count, seed, digit)
    images = []
    for start in range(0, count, CHUNK[backend]):
        chunk = latents[start:start + CHUNK[backend]]
        images.append(compiled.run(chunk, backend=backend).reshape(len(chunk), -1))
        advance(len(chunk))
    return np.concatenate(images)


def write_grid(compiled: Compiled, drawn: Picture, images: np.ndarray, backend: str, seed: int, output: Path,
               digit: int | None = None) -> dict:
    """The grid, its quality score where the classifier knows the outputs, and DIR/generate.json."""
    drawn = drawn.for_batch(images)
    save_grid(images, output, drawn)
    report = {"images": len(images), "backend": backend, "seed": seed, "digit": digit,
              "grid": str(Path(output).resolve()),
              "layout": str(drawn.shape), "value_range": [drawn.values.low, drawn.values.high],
              "value_range_from": drawn.values.source}
    unscored = unscored_reason(drawn.shape, drawn.values)
    if unscored is None:
        quality = quality_score(images)
        report.update(quality_score=quality.score, class_shares=list(quality.class_shares))
    else:
        report.update(quality_score=None, quality_note=unscored)
    builddir.write_report(compiled.directory, GENERATE_REPORT, report)
    return report
