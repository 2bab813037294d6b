"""`undense generate`: random latents through a compiled model on a backend, as a PNG grid with its quality score.

Images go through the backend in chunks, so a long run on the RTL shows its progress; DIR/generate.json records
what was generated, where the grid is, and the score (the report shows them).
"""
from math import ceil, sqrt
from pathlib import Path

import numpy as np

from undense.compiler import builddir
from undense.errors import UndenseError
from undense.runtime.compiled import Compiled
from undense.runtime.images import save_grid
from undense.runtime.quality import quality_score

GENERATE_REPORT = "generate.json"
CHUNK = {"golden": 4096, "rtl": 512}  # images a backend call: a simulator run has a start-up cost


def generate(compiled: Compiled, count: int, backend: str, seed: int, advance=lambda images: None) -> np.ndarray:
    """`count` images from N(0, I) latents (seeded), one row of pixels each; `advance(n)` after every chunk."""
    latents = compiled.random_inputs(count, seed)
    images = []
    for start in range(0, count, CHUNK[backend]):
        chunk = latents[start:start + CHUNK[backend]]
        images.append(compiled.run(chunk, backend=backend).reshape(len(chunk), -1))
        advance(len(chunk))
    return np.concatenate(images)


def write_grid(compiled: Compiled, images: np.ndarray, backend: str, seed: int, output: Path) -> dict:
    """The PNG grid, its quality score, and DIR/generate.json."""
    save_grid(images, output, columns=max(8, ceil(sqrt(len(images)))))  # square-ish for big batches
    report = {"images": len(images), "backend": backend, "seed": seed, "grid": str(Path(output).resolve())}
    try:
        quality = quality_score(images)
        report.update(quality_score=quality.score, class_shares=list(quality.class_shares))
    except UndenseError as error:  # the score is defined for 8x8 digits only
        report.update(quality_score=None, quality_note=str(error))
    builddir.write_report(compiled.directory, GENERATE_REPORT, report)
    return report
