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


def run_bench(model_path: Path = BUNDLED_MODEL, repeats: int = 5, progress=lambda step: None) -> dict:
    progress("compile time")
    return {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "undense": metadata.version("undense")},
        "compile": compile_figures(model_path, repeats),
    }
