"""`undense bench`: measured figures of the flow, written as JSON (`make bench` writes bench.json).

Every figure is timed here, on this machine, now: each case runs once to warm
up, then `repeats` times; the report gives min, median and max wall seconds.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np

from undense.compiler import golden
from undense.errors import DoesNotFit, UndenseError
from undense.runtime.compiled import compile
from undense.runtime.float_model import random_latents, sample_float
from undense.runtime.power import power_report
from undense.runtime.quality import quality_score
from undense.runtime.synthesis import synthesize
from undense.runtime.synthesis import write_report as write_synth_report
from undense.runtime.synthetic import mlp
from undense.sim.simulate import write_report as write_sim_report

BUNDLED_MODEL = Path("models/digits/generator.onnx")
GENERATOR28 = Path("models/digits28/generator.onnx")  # the 28x28 convolutional generator
GENERATOR28_IMAGES = 10_000  # random (latent, digit) inputs it runs on the RTL, compared with golden
# 4 weight layers, 1,024 wide, 90% zeros. At 8 bits its 220k nonzeros and their indices (18 bits each) would
# outgrow the ECP5-85F's 3.8 Mbit of block RAM, so it is compiled with 4-bit weights and activations.
SYNTHETIC_WIDTHS = (16, 1024, 1024, 1024, 64)
SYNTHETIC_DENSITY = 0.1
SYNTHETIC_BITS = 4
BIT_EXACT_IMAGES = 100_000  # random latents the bundled model runs on the RTL, compared with golden
FRESH_RUNS = 3  # compile+rtl+sim from an empty cache: one run moves by a fifth with what else the machine does
# the sweep whose wall time the bench measures on 1 and 2 workers: bits, targets, throughputs
SWEEP_POINTS = ((4, 6, 8), ("ecp5-25k",), (None,))


def timed(run: Callable[[], object], repeats: int, warm_up: bool = True) -> dict:
    if warm_up:
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return {"runs": repeats, "min_s": min(seconds), "median_s": statistics.median(seconds), "max_s": max(seconds)}


SYNTHETIC_LABEL = (f"MLP {'-'.join(map(str, SYNTHETIC_WIDTHS))}, {1 - SYNTHETIC_DENSITY:.0%} zeros, "
                   f"{SYNTHETIC_BITS} bits")


def synthetic_model():
    return mlp(list(SYNTHETIC_WIDTHS), ["Relu"] * 3 + ["Sigmoid"], density=SYNTHETIC_DENSITY, seed=0)


def synthetic_calibration() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((256, SYNTHETIC_WIDTHS[0])).astype(np.float32)


def compile_figures(model_path: Path, repeats: int) -> dict:
    synthetic, calibration = synthetic_model(), synthetic_calibration()
    return {
        "bundled": {"model": str(model_path), **timed(lambda: compile(model_path), repeats)},
        "synthetic_1024": {"model": SYNTHETIC_LABEL,
                           **timed(lambda: compile(synthetic, calibration=calibration, bits=SYNTHETIC_BITS), repeats)},
    }


# The calibrations whose error on fresh latents the bench compares: the model's own file and more N(0, I) samples.
CALIBRATIONS = {"default": None, "normal:4096": "normal:4096"}


def fidelity_figures(model_path: Path, samples: int = 1000, seed: int = 2024) -> dict:
    """The golden executor against the float model under onnxruntime, on the same random latents."""
    compiled = compile(model_path)
    latents = random_latents(compiled.graph.sizes[compiled.graph.input], samples, seed)
    golden, floating = compiled.run(latents), sample_float(model_path, samples, seed)
    golden_score, float_score = quality_score(golden), quality_score(floating)
    calibrated = {name: compiled if spec is None else compile(model_path, calibration=spec)
                  for name, spec in CALIBRATIONS.items()}
    return {"model": str(model_path), "samples": samples, "seed": seed, "bits": compiled.report["options"]["bits"],
            "mean_abs_pixel_error": float(np.abs(golden - floating).mean()),
            "max_abs_pixel_error": float(np.abs(golden - floating).max()),
            "float_score": float_score.score, "golden_score": golden_score.score,
            "golden_to_float_score": golden_score.score / float_score.score,
            "output_range": float(np.ptp(floating)),
            "calibrations": {name: calibration_errors(each, latents, floating) for name, each in calibrated.items()}}


CPU_BATCHES = (1, 16, 256, 1024, 4096)


def cpu_baseline_figures(model_path: Path, batches: tuple[int, ...] = CPU_BATCHES, seconds: float = 1.0) -> dict:
    """The float model on this machine's CPU with onnxruntime, as a user would run it: images per second at
    each batch size, each timed over loops of at least `seconds` after a warm-up run. The accelerator's
    images/s are meant to be read against the best of these, measured in the same run."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name, (_, features) = session.get_inputs()[0].name, session.get_inputs()[0].shape
    runs = []
    for batch in batches:
        latents = random_latents(features, batch, seed=batch)
        session.run(None, {name: latents})
        images, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            session.run(None, {name: latents})
            images += batch
        runs.append({"batch": batch, "images_per_second": images / (time.perf_counter() - start)})
    best = max(runs, key=lambda run: run["images_per_second"])
    return {"model": str(model_path), "runtime": f"onnxruntime {ort.__version__}, CPUExecutionProvider",
            "cpus": os.cpu_count(), "batches": runs, "best_batch": best["batch"],
            "best_images_per_second": best["images_per_second"],
            "batch1_images_per_second": runs[0]["images_per_second"] if batches[0] == 1 else None}


def calibration_errors(compiled, latents: np.ndarray, floating: np.ndarray) -> dict:
    """Worst and mean |golden - float| on latents the calibration never saw, also as shares of the float
    output's range over them; beside them the compile record's share of its own fresh latents that saturate."""
    error = np.abs(compiled.run(latents) - floating)
    span = float(np.ptp(floating))
    record = compiled.report["calibration"]
    return {"source": record["source"], "calibration_samples": record["samples"],
            "record_saturated_latents": record["saturated_latents"],
            "max_abs_pixel_error": float(error.max()), "mean_abs_pixel_error": float(error.mean()),
            "max_error_share_of_range": float(error.max()) / span,
            "mean_error_share_of_range": float(error.mean()) / span}


def mutation_figures(count: int = 1000) -> dict:
    """The mutation fuzz over `count` damaged models (runtime/mutations.py), in a process of its own as
    `python -m undense.runtime.mutations` runs it: its mutants go through the command line in-process, beside
    whose output the bench's own progress line has no place."""
    with tempfile.TemporaryDirectory(prefix="undense-bench-") as scratch:
        path = Path(scratch) / "mutations.json"
        done = subprocess.run([sys.executable, "-m", "undense.runtime.mutations", "-n", str(count), "-o", str(path)],
                              capture_output=True, text=True)
        if not path.is_file():
            raise RuntimeError(f"the mutation fuzz stopped (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(path.read_text())


def simulation_figures(compiled, images: int) -> dict:
    """Cycle-accurate figures of one compiled model: steady-state cycles against the ideal, speed."""
    start = time.perf_counter()
    result = compiled.simulate(compiled.random_inputs(images, seed=1))
    report = result.report
    return {"images": images, "mismatches": report["mismatches"], "event_mismatches": len(report["event_mismatches"]),
            "cycles_per_image": report["cycles_per_image"], "ideal_cycles_per_image": report["ideal_cycles_per_image"],
            "cycles_per_image_distribution": report["cycles_per_image_distribution"],
            "predicted_cycles_per_image": report["predicted_cycles_per_image"],
            "predicted_cycles_per_image_p99": report["predicted_cycles_per_image_p99"],
            "cycles_over_prediction": report["cycles_per_image"] / report["predicted_cycles_per_image"],
            "cycles_over_ideal": report["cycles_per_image"] / report["ideal_cycles_per_image"],
            "first_image_latency_cycles": report["first_image_latency_cycles"],
            "sim_cycles_per_second": report["sim_cycles_per_second"],
            "wall_s_including_any_build": time.perf_counter() - start}


def fresh_sim_walls(model_path: Path, images: int = 64, repeats: int = FRESH_RUNS) -> dict:
    """`undense compile`, `undense rtl` and `undense sim -n 64` as a user runs them, Verilator build included
    (empty cache each time), `repeats` times."""
    def fresh_run():
        with tempfile.TemporaryDirectory(prefix="undense-bench-") as scratch:
            env = {**os.environ, "UNDENSE_CACHE": scratch}
            for command in (["compile", str(model_path), "-o", f"{scratch}/build"], ["rtl", f"{scratch}/build"],
                            ["sim", f"{scratch}/build", "-n", str(images)]):
                subprocess.run([sys.executable, "-m", "undense", *command], check=True, capture_output=True, env=env)

    return timed(fresh_run, repeats, warm_up=False)


def target_figures(model_path: Path, directory: Path, target_name: str, images: int = 256) -> tuple[dict, dict]:
    """The bundled model folded for `target_name` at the widest bits (8 down) that fit: Yosys + nextpnr, then
    the energy per image from a simulation of `images` images and the synthesized resources."""
    refusals = {}
    for bits in range(8, 1, -1):
        try:
            compiled = compile(model_path, directory, bits=bits, target_name=target_name)
        except DoesNotFit as error:
            refusals[bits] = str(error)
            continue
        try:
            report = synthesize(compiled, target_name)
        except UndenseError as error:  # the tools failed: the figure is that they did, and why
            return {"bits": bits, "total_pe": compiled.report["total_pe"], "synthesis_failed": str(error)[:2000],
                    "estimate": compiled.report["estimate"]}, {}
        write_synth_report(directory, report)
        write_sim_report(directory, compiled.simulate(compiled.random_inputs(images, seed=1)).report)
        keys = ("lut", "ff", "dsp", "bram", "spram", "lutram", "fmax_mhz", "clock_mhz", "timing_met", "estimate",
                "wall_seconds", "tools")
        synthesis = {"bits": bits, "total_pe": compiled.report["total_pe"], **{key: report[key] for key in keys},
                     "refused_at_more_bits": refusals}
        return synthesis, energy_figures(power_report(compiled))
    return {"fits": False, "refused_at_more_bits": refusals}, {}


def generator28_figures(directory: Path, progress=lambda step: None) -> dict:
    """The 28x28 convolutional generator on the ECP5-85F: onnxruntime on this CPU first (same run), then 10,000
    random (latent, digit) inputs on the RTL against golden with its counters, its cycles per image against the
    fold's prediction, the quality of the RTL's images against the float model's on the same inputs (28x28
    scorer), Yosys + nextpnr, and the energy per image beside the GPU."""
    progress("the 28x28 generator on this CPU with onnxruntime")
    figures = {"model": str(GENERATOR28), "cpu_baseline": cpu_baseline_figures(GENERATOR28)}
    compiled = compile(GENERATOR28, directory, target_name="ecp5-85k")
    figures["compile"] = {key: compiled.report[key] for key in ("total_pe", "estimate", "predicted_cycles_per_image",
                                                                 "predicted_images_per_second")}
    figures["compile"]["layers"] = [{key: layer[key] for key in ("name", "op", "lanes", "groups", "cycles", "estimate")}
                                    for layer in compiled.report["layers"]]
    progress(f"the 28x28 generator: {GENERATOR28_IMAGES:,} random (latent, digit) inputs on the RTL")
    start = time.perf_counter()
    latents = compiled.random_inputs(GENERATOR28_IMAGES, seed=1)
    simulation = compiled.simulate(latents)
    write_sim_report(directory, simulation.report)
    report = simulation.report
    figures["simulation"] = {
        "images": GENERATOR28_IMAGES, "mismatches": report["mismatches"],
        "event_mismatches": len(report["event_mismatches"]), "cycles_per_image": report["cycles_per_image"],
        "predicted_cycles_per_image": report["predicted_cycles_per_image"],
        "cycles_over_prediction": report["cycles_per_image"] / report["predicted_cycles_per_image"],
        "ideal_cycles_per_image": report["ideal_cycles_per_image"],
        "first_image_latency_cycles": report["first_image_latency_cycles"],
        "sim_cycles_per_second": report["sim_cycles_per_second"], "wall_s": time.perf_counter() - start}
    rtl_images = golden.output_values(compiled.graph, simulation.codes).reshape(GENERATOR28_IMAGES, -1)
    float_images = sample_float(GENERATOR28, GENERATOR28_IMAGES, seed=1)
    rtl_score, float_score = quality_score(rtl_images), quality_score(float_images)
    figures["quality"] = {"rtl_score": rtl_score.score, "float_score": float_score.score,
                          "rtl_to_float_score": rtl_score.score / float_score.score,
                          "mean_abs_pixel_error": float(np.abs(rtl_images - float_images).mean())}
    progress("synthesizing the 28x28 generator for ecp5-85k (minutes), then its energy per image")
    synthesis = synthesize(compiled, "ecp5-85k")
    write_synth_report(directory, synthesis)
    keys = ("lut", "ff", "dsp", "bram", "fmax_mhz", "clock_mhz", "timing_met", "estimate", "wall_seconds")
    figures["synthesis"] = {key: synthesis[key] for key in keys}
    figures["energy"] = energy_figures(power_report(compiled))
    clock_mhz = min(synthesis["clock_mhz"], synthesis["fmax_mhz"])
    rate = clock_mhz * 1e6 / report["cycles_per_image"]
    figures["headline"] = {"clock_mhz": clock_mhz, "images_per_second": rate,
                           "over_cpu": rate / figures["cpu_baseline"]["best_images_per_second"],
                           "fpga_j_per_image": figures["energy"]["fpga_j_per_image"],
                           "gpu_j_per_image_best": figures["energy"]["gpu"]["j_per_image_best"],
                           "gpu_best_batch": figures["energy"]["gpu"]["best_batch"],
                           "gpu_source": figures["energy"]["gpu"]["source"],
                           "ratio_best": figures["energy"]["ratio_best"],
                           "measured_gpus": {name: {"j_per_image_best": other["gpu"]["j_per_image_best"],
                                                    "best_batch": other["gpu"]["best_batch"],
                                                    "ratio_best": other["ratio_best"]}
                                             for name, other in figures["energy"]["measured_gpus"].items()},
                           "bit_exact_images": GENERATOR28_IMAGES if report["mismatches"] == 0 else 0}
    return figures


@contextmanager
def simulator_cache(folder: str):
    """UNDENSE_CACHE pointed at `folder` meanwhile (for this process and the workers it starts)."""
    earlier = os.environ.get("UNDENSE_CACHE")
    os.environ["UNDENSE_CACHE"] = folder
    try:
        yield
    finally:
        if earlier is None:
            del os.environ["UNDENSE_CACHE"]
        else:
            os.environ["UNDENSE_CACHE"] = earlier


def sweep_figures(model_path: Path, points: tuple = SWEEP_POINTS, settings=None, progress=lambda step: None) -> dict:
    """The same sweep (by default SWEEP_POINTS, with synthesis) from an empty folder and an empty simulator cache
    on a local pool of 1 and of 2 workers: the wall seconds of each, and the points' figures of the last."""
    from undense.runtime.sweep import Settings, grid, sweep
    from undense.runtime.sweep_engines import local_pool

    points, runs = grid(*points), {}
    for workers in (1, 2):
        progress(f"a sweep of {len(points)} points of the bundled model on {workers} worker{'s' * (workers > 1)}")
        with tempfile.TemporaryDirectory(prefix="undense-bench-") as scratch, simulator_cache(f"{scratch}/cache"), \
                local_pool(workers) as submit:
            start = time.perf_counter()
            report = sweep(model_path, points, Path(scratch) / "sweep", settings or Settings(), submit, workers,
                           f"a local pool of {workers}")
            runs[workers] = {"wall_s": time.perf_counter() - start, "summary": report["summary"]}
    return {"points": [point.label for point in points], "workers": runs,
            "speedup_2_over_1": runs[1]["wall_s"] / runs[2]["wall_s"],
            "figures": [{"label": point["label"], "failure": point["failure"], "seconds": point["seconds"],
                         **point["figures"]} for point in report["points"]]}


def energy_figures(report: dict) -> dict:
    fpga = report["fpga"]
    ranged = ("fpga_j_per_image", "fpga_one_image_j", "ratio_best", "ratio_batch1")
    return {"sentence": report["sentence"], **{key: report[key] for key in ranged},
            **{f"{key}_range": report[f"{key}_range"] for key in ranged},
            "average_power_w": fpga["average_power_w"], "images_per_second": fpga["images_per_second"],
            "images_per_joule": fpga["images_per_joule"], "breakdown_j": fpga["breakdown_j"],
            "floor_j_per_image": report["floor"]["j_per_image"], "gpu": report["gpu"],
            "gpu_variants": report["gpu_detail"].get("variants", {}), "parts": report["parts"],
            "measured_gpus": {name: {key: other[key] for key in ("sentence", "gpu", "ratio_best", "ratio_best_range",
                                                                 "ratio_batch1", "ratio_batch1_range")}
                              for name, other in report["measured_gpus"].items()}}


def run_bench(model_path: Path = BUNDLED_MODEL, repeats: int = 5, progress=lambda step: None) -> dict:
    figures = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "undense": metadata.version("undense")}}
    progress("compile time")
    figures["compile"] = compile_figures(model_path, repeats)
    progress("golden vs float")
    figures["fidelity"] = fidelity_figures(model_path)
    progress("the float model on this CPU with onnxruntime")
    figures["cpu_baseline"] = cpu_baseline_figures(model_path)
    progress("mutation fuzz: 1,000 damaged models through the command line")
    figures["mutations"] = mutation_figures()
    with tempfile.TemporaryDirectory(prefix="undense-bench-") as scratch:
        progress("simulating the bundled model")
        bundled = compile(model_path, Path(scratch) / "bundled")
        figures["simulation"] = {"bundled": {"model": str(model_path),
                                             **simulation_figures(bundled, BIT_EXACT_IMAGES)}}
        progress("simulating the synthetic 1024-wide model (its Verilator build takes minutes)")
        synthetic = compile(synthetic_model(), Path(scratch) / "synthetic", calibration=synthetic_calibration(),
                            bits=SYNTHETIC_BITS, target_name="ecp5-85k")
        figures["simulation"]["synthetic_1024"] = {"model": SYNTHETIC_LABEL, **simulation_figures(synthetic, 40)}
        for target_name in ("ecp5-85k", "ecp5-25k", "ice40-up5k"):
            progress(f"synthesizing the bundled model for {target_name} (minutes), then its energy per image")
            synthesis, energy = target_figures(model_path, Path(scratch) / target_name, target_name)
            figures.setdefault("synthesis", {})[target_name] = synthesis
            figures.setdefault("energy", {})[target_name] = energy
        figures["generator28"] = generator28_figures(Path(scratch) / "generator28", progress)
    progress(f"undense compile, rtl and sim -n 64 from an empty simulator cache, {FRESH_RUNS} times")
    fresh = fresh_sim_walls(model_path)
    figures["simulation"]["bundled"]["fresh_compile_rtl_and_sim_64_wall_s"] = fresh["median_s"]
    figures["simulation"]["bundled"]["fresh_compile_rtl_and_sim_64_runs"] = fresh
    figures["sweep"] = sweep_figures(model_path, progress=progress)
    figures["headline"] = headline(figures)
    return figures


def headline(figures: dict) -> dict:
    """The bundled model on the ECP5-85F against the same model on this CPU: images/s from the measured cycles
    per image at the clock the placed design meets (the target's, or its Fmax if lower), and energy."""
    synthesis, simulation = figures["synthesis"]["ecp5-85k"], figures["simulation"]["bundled"]
    if "fmax_mhz" not in synthesis:
        return {"target": "ecp5-85k", "synthesis_failed": synthesis.get("synthesis_failed", "does not fit")}
    clock_mhz = min(synthesis["clock_mhz"], synthesis["fmax_mhz"])
    rate = clock_mhz * 1e6 / simulation["cycles_per_image"]
    cpu = figures["cpu_baseline"]
    energy = figures["energy"]["ecp5-85k"]
    return {"target": "ecp5-85k", "clock_mhz": clock_mhz, "timing_met": synthesis["timing_met"],
            "cycles_per_image": simulation["cycles_per_image"], "images_per_second": rate,
            "cpu_images_per_second": cpu["best_images_per_second"], "cpu_batch": cpu["best_batch"],
            "over_cpu": rate / cpu["best_images_per_second"],
            "fpga_j_per_image": energy.get("fpga_j_per_image"), "fpga_j_per_image_range": energy.get(
                "fpga_j_per_image_range"),
            "bit_exact_images": simulation["images"] if simulation["mismatches"] == 0 else 0}
