"""`undense power`: joules per image on the FPGA (sim/energy.py) next to a GPU (sim/gpu.py, runtime/baseline.py),
from the reports of the build dir, into DIR/power.json, a plot of the breakdown and one sentence to quote."""
import json
from dataclasses import replace
from pathlib import Path

from undense.compiler import builddir
from undense.compiler.targets import Target
from undense.errors import UndenseError
from undense.runtime import baseline
from undense.runtime.compiled import Compiled
from undense.runtime.figures import micro, ratios, spread
from undense.runtime.synthesis import SYNTH_REPORT
from undense.sim import energy, gpu
from undense.sim.simulate import SIM_REPORT

POWER_REPORT = "power.json"
POWER_PLOT = "power.png"
DEFAULT_GPU = "H100 SXM"


def read_report(directory: Path, name: str, stage: str) -> dict:
    path = directory / name
    if not path.is_file():
        raise UndenseError(f"{path} is missing: run `undense {stage} {directory}` first")
    return json.loads(path.read_text())


def resources(compiled: Compiled) -> tuple[dict, str]:
    """Flip-flops and blocks as synthesized for the compiled target when synth.json has them, else estimated."""
    path = compiled.directory / SYNTH_REPORT
    if path.is_file():
        synth = json.loads(path.read_text())
        if synth["target"] == compiled.target.name:
            return synth, SYNTH_REPORT
    return compiled.report["estimate"], "the compiler's estimate"


def gpu_baseline(compiled: Compiled, gpu_name: str) -> dict:
    """The shipped measurement for this GPU and model if there is one, else the roofline model."""
    spec = gpu.gpu(gpu_name)
    model_sha = json.loads((compiled.directory / builddir.MANIFEST).read_text())["source"]["sha256"]
    measured = baseline.shipped(spec["nvml_name"], model_sha)
    if measured is not None:
        return {**measured, "gpu": gpu_name, "device": measured["gpu"]}
    return gpu.modelled_baseline(compiled.graph, gpu_name)


def steady_simulation(directory: Path) -> dict:
    """sim.json, refused where its run was too short for a steady state: its cycles per image would then be
    a pipeline filling up, not the streaming figure the energy per image is priced at."""
    sim = read_report(directory, SIM_REPORT, "sim")
    if not sim.get("steady_state", True):  # a sim.json from before the key is taken as it is
        needed = sim["images_needed_for_steady_state"]
        raise UndenseError(f"{directory / SIM_REPORT} is from {sim['images']:,} image{'s' * (sim['images'] != 1)}, "
                           f"fewer than the {needed:,} a steady state needs, so its {sim['cycles_per_image']:,.0f} "
                           f"cycles per image is not the streaming figure: run `undense sim {directory} -n {needed}` "
                           "(or more) first")
    return sim


def clocked(target: Target, used: dict) -> Target:
    """The target at the clock its placed design meets: its own clock, or the Fmax nextpnr reached where that is
    lower (static power is paid per second, so a slower clock costs more per image). Unplaced: its own clock."""
    if "fmax_mhz" not in used or used["fmax_mhz"] >= target.clock_mhz:
        return target
    return replace(target, clock_mhz=used["fmax_mhz"])


def power_report(compiled: Compiled, gpu_name: str = DEFAULT_GPU) -> dict:
    """The FPGA's energy per image against `gpu_name` (a shipped measurement, else the model), and against every
    other GPU measured on this model (`measured_gpus`, each with its own sentence)."""
    sim = steady_simulation(compiled.directory)
    used, resources_from = resources(compiled)
    fpga = energy.fpga_energy(compiled.report, sim, used, clocked(compiled.target, used))
    fpga["resources_from"] = resources_from
    floor = energy.asic_floor(compiled.report, sim)
    reference = gpu_baseline(compiled, gpu_name)
    report = {
        "fpga_j_per_image": fpga["j_per_image"],
        "fpga_j_per_image_range": fpga["j_per_image_range"],
        "fpga_one_image_j": fpga["one_image"]["j_per_image"],
        "fpga_one_image_j_range": fpga["one_image"]["j_per_image_range"],
        "read": {name: builddir.report_digest(compiled.directory, name) for name in (SIM_REPORT, SYNTH_REPORT)},
        **comparison(reference, fpga),
        "fpga": fpga, "floor": {**floor, "fpga_over_floor": fpga["j_per_image"] / floor["j_per_image"]},
        "parts": energy.across_parts(compiled.report, sim, used),
        "gpu_detail": reference,
    }
    report["sentence"] = sentence(report)
    report["measured_gpus"] = {name: {**measured, "sentence": sentence({**report, **measured})}
                               for name in gpu.gpus() if name != gpu_name
                               for measured in [comparison(gpu_baseline(compiled, name), fpga)]
                               if measured["gpu"]["source"] == "measured"}
    return report


def comparison(reference: dict, fpga: dict) -> dict:
    """The GPU's figures and GPU/FPGA: the GPU at its best batch against the FPGA streaming, one image at a time on
    both, each typical with its range."""
    streaming, alone = fpga["j_per_image_range"], fpga["one_image"]["j_per_image_range"]
    gpu_best, gpu_batch1 = gpu_range(reference, "best"), gpu_range(reference, "batch1")
    return {"gpu": {**{key: reference[key] for key in ("gpu", "j_per_image_batch1", "j_per_image_best", "best_batch",
                                                       "source")},
                    "variant_best": reference.get("best_variant"), "variant_batch1": reference.get("batch1_variant"),
                    "j_per_image_best_range": gpu_best, "j_per_image_batch1_range": gpu_batch1},
            "ratio_best": reference["j_per_image_best"] / fpga["j_per_image"],
            "ratio_best_range": ratio_range(gpu_best, streaming),
            "ratio_batch1": reference["j_per_image_batch1"] / fpga["one_image"]["j_per_image"],
            "ratio_batch1_range": ratio_range(gpu_batch1, alone)}


def gpu_range(reference: dict, which: str) -> dict:
    """The GPU's joules per image at its best batch or at batch 1 as {low, typical, high}: the model's range,
    or a measurement's one figure at all three."""
    measured = reference[f"j_per_image_{which}"]
    spread = reference.get(f"j_per_image_{which}_range", {})
    return {"low": spread.get("low", measured), "typical": measured, "high": spread.get("high", measured)}


def ratio_range(gpu_joules: dict, fpga_joules: dict) -> dict:
    """GPU / FPGA from the end least favourable to the FPGA (the GPU's low, the FPGA's high) to the most."""
    return {"low": gpu_joules["low"] / fpga_joules["high"], "typical": gpu_joules["typical"] / fpga_joules["typical"],
            "high": gpu_joules["high"] / fpga_joules["low"]}


def variant_name(variant: str | None) -> str:
    """`fused_network_fp16` as `fused network, fp16`."""
    if not variant:
        return ""
    kind, _, precision = variant.rpartition("_")
    return f", {kind.replace('_', ' ')}, {precision}"


def sentence(report: dict) -> str:
    """The line to quote. The GPU at its best (the fused variant with the fewest joules) at its best batch
    against the FPGA streaming, and at batch 1 against one image alone on the FPGA; every figure typical with
    its range, the ratios GPU/FPGA from the end least favourable to the FPGA to the other."""
    fpga, reference = report["fpga"], report["gpu"]
    source = "measured" if reference["source"] == "measured" else "modelled"
    return (f"{spread(report['fpga_j_per_image_range'])} per image on {fpga['device']} at {fpga['clock_mhz']:g} MHz "
            f"vs {spread(reference['j_per_image_best_range'])} on {reference['gpu']} ({source}"
            f"{variant_name(reference['variant_best'])}) at batch {reference['best_batch']:,}: GPU/FPGA "
            f"{ratios(report['ratio_best_range'])}; one image alone {spread(report['fpga_one_image_j_range'])} vs "
            f"{spread(reference['j_per_image_batch1_range'])} at batch 1: {ratios(report['ratio_batch1_range'])}")


def plot(report: dict, path: Path) -> Path:
    """Two bars of stacked energy per image: by event type and by layer (dynamic energy only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpga = report["fpga"]
    figure, (by_event, by_layer) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, parts, title in ((by_event, fpga["breakdown_j"], "by event type"),
                               (by_layer, fpga["by_layer_dynamic_j"], "by layer (dynamic)")):
        names = list(parts)
        axis.barh(names, [parts[name] * 1e9 for name in names], color="#4c72b0")
        axis.invert_yaxis()
        axis.set_xlabel("nJ per image")
        axis.set_title(title)
    figure.suptitle(f"{fpga['device']} at {fpga['clock_mhz']:g} MHz: {micro(fpga['j_per_image'])} per image")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(directory: Path, report: dict) -> Path:
    plot(report, directory / POWER_PLOT)
    return builddir.write_report(directory, POWER_REPORT, report)
