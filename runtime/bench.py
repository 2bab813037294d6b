"""`undense bench`: measured figures of the flow, written as JSON (`make bench` writes bench.json).

Every figure is timed here, on this machine, now: each case runs once to warm
up, then `repeats` times; the report gives min, median and max wall seconds.
"""
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from undense.runtime.compiled import compile
from undense.runtime.float_model import random_latents, sample_float
from undense.runtime.quality import quality_score
from undense.runtime.synthetic import mlp

BUNDLED_MODEL = Path("models/digits/generator.onnx")
# 4 weight layers, 1,024 wide, 90% zeros. At 8 bits its 220k nonzeros and their indices (18 bits each) would
# outgrow the ECP5-85F's 3.8 Mbit of block RAM, so it is compiled with 4-bit weights and activations.
SYNTHETIC_WIDTHS = (16, 1024, 1024, 1024, 64)
SYNTHETIC_DENSITY = 0.1
SYNTHETIC_BITS = 4


def timed(run: Callable[[], object], repeats: int) -> dict:
    run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return {"runs": repeats, "min_s": min(seconds), "median_s": statistics.median(seconds), "max_s": max(seconds)}


def compile_figures(model_path: Path, repeats: int) -> dict:
    synthetic = mlp(list(SYNTHETIC_WIDTHS), ["Relu"] * 3 + ["Sigmoid"], density=SYNTHETIC_DENSITY, seed=0)
    calibration = np.random.default_rng(0).standard_normal((256, SYNTHETIC_WIDTHS[0])).astype(np.float32)
    return {
        "bundled": {"model": str(model_path), **timed(lambda: compile(model_path), repeats)},
        "synthetic_1024": {
            "model": f"MLP {'-'.join(map(str, SYNTHETIC_WIDTHS))}, {1 - SYNTHETIC_DENSITY:.0%} zeros, "
                     f"{SYNTHETIC_BITS} bits",
            **timed(lambda: compile(synthetic, calibration=calibration, bits=SYNTHETIC_BITS), repeats),
        },
    }


def fidelity_figures(model_path: Path, samples: int = 1000, seed: int = 2024) -> dict:
    """The golden executor against the float model under onnxruntime, on the same random latents."""
    compiled = compile(model_path)
    latents = random_latents(compiled.graph.sizes[compiled.graph.input], samples, seed)
    golden, floating = compiled.run(latents), sample_float(model_path, samples, seed)
    golden_score, float_score = quality_score(golden), quality_score(floating)
    return {"model": str(model_path), "samples": samples, "seed": seed, "bits": compiled.report["options"]["bits"],
            "mean_abs_pixel_error": float(np.abs(golden - floating).mean()),
            "max_abs_pixel_error": float(np.abs(golden - floating).max()),
            "float_score": float_score.score, "golden_score": golden_score.score,
            "golden_to_float_score": golden_score.score / float_score.score}


def run_bench(model_path: Path = BUNDLED_MODEL, repeats: int = 5, progress=lambda step: None) -> dict:
    figures = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "undense": metadata.version("undense")}}
    progress("compile time")
    figures["compile"] = compile_figures(model_path, repeats)
    progress("golden vs float")
    figures["fidelity"] = fidelity_figures(model_path)
    return figures
