"""`undense report`: the build dir's reports (compile, sim, synth, power, generate) as one HTML page.

The page is self-contained: styles inline, images embedded as data URIs, no script, nothing fetched, so it
opens offline and can be mailed as one file. A stage that has not run says which command runs it.
"""
import base64
import json
import time
from html import escape
from pathlib import Path

from undense.compiler import builddir
from undense.runtime.cocotb_bench import REPORT as COCOTB_REPORT
from undense.runtime.compiled import Compiled
from undense.runtime.figures import gpu_variant_rows, number, ratios, spread
from undense.runtime.generate import GENERATE_REPORT
from undense.runtime.power import POWER_REPORT, resources
from undense.runtime.synthesis import SYNTH_REPORT
from undense.sim.simulate import SIM_REPORT

REPORT_PAGE = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.2rem 0.6rem; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; } .quote { font-size: 1.15rem; background: #eef5ff; padding: 0.8rem; }
.bar { background: #ddd; width: 10rem; height: 0.8rem; display: inline-block; } .bar span { background: #4c72b0;
height: 100%; display: block; } .missing { color: #a33; } .small { font-size: 0.85rem; color: #555; }
img.grid { image-rendering: pixelated; width: 32rem; } img.plot { width: 100%; }
table.text td, table.text th { text-align: left; }
"""


def load_json(directory: Path, name: str) -> dict | None:
    path = directory / name
    return json.loads(path.read_text()) if path.is_file() else None


def embedded_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def table(header: list[str], rows: list[list], css_class: str = "") -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class=\"{css_class}\"><tr>{head}</tr>{body}</table>" if css_class else \
        f"<table><tr>{head}</tr>{body}</table>"


def missing(stage: str, directory: Path) -> str:
    return f'<p class="missing">Not run yet: <code>undense {stage} {escape(str(directory))}</code> makes it.</p>'


def images(count: int) -> str:
    return f"{count:,} image{'s' * (count != 1)}"


def share_bar(used: float, available: float) -> str:
    width = 0 if not available else min(100.0, 100.0 * used / available)
    return f'<span class="bar"><span style="width:{width:.1f}%"></span></span> {width:.1f}%'


def operation(layer: dict) -> str:
    """The layer's op with its activation: `dense + sigmoid`."""
    activation = layer.get("activation", "identity")
    return layer["op"] if activation == "identity" else f"{layer['op']} + {activation}"


def model_name(directory: Path) -> str:
    """The ONNX file the build dir was compiled from, or the build dir's name for a model given in memory."""
    source = json.loads((directory / builddir.MANIFEST).read_text())["source"]
    return Path(source["path"]).name if source.get("path") else directory.name


def stale_reasons(directory: Path, power: dict) -> list[str]:
    """Why power.json no longer matches the reports it was computed from (none when it does)."""
    read = power.get("read")
    if read is None:
        return ["it does not record which reports it read (written by an older undense)"]
    reasons = []
    for name, digest in read.items():
        now = builddir.report_digest(directory, name)
        if now != digest:
            reasons.append(f"{name} was written after it" if digest is None
                           else f"{name} is gone since" if now is None else f"{name} changed since")
    return reasons


STAGES = (  # report, the command that writes it, what it holds
    (builddir.REPORT, "compile", "layers, folding, resource estimate"),
    (SIM_REPORT, "sim", "cycles and activity on the RTL"),
    (COCOTB_REPORT, "cocotb", "the cocotb bench under input gaps and back-pressure"),
    (GENERATE_REPORT, "generate --backend rtl", "the image grid"),
    (SYNTH_REPORT, "synth", "resources and timing after place and route"),
    (POWER_REPORT, "power", "energy per image against a GPU"),
)


def stages_section(directory: Path) -> str:
    """When each stage ran, and whether a stage is missing or computed from reports that changed since."""
    rows = []
    for name, command, holds in STAGES:
        path = directory / name
        if not path.is_file():
            rows.append([name, "-", holds, f'<span class="missing">not run: <code>undense {escape(command)} '
                                           f'{escape(str(directory))}</code></span>'])
            continue
        written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
        report = json.loads(path.read_text())
        reasons = stale_reasons(directory, report) if name == POWER_REPORT else []
        if name == SIM_REPORT and not report.get("steady_state", True):
            reasons = [f"{images(report['images'])}, short of the {report['images_needed_for_steady_state']} a "
                       "steady state needs"]
            command = f"sim -n {report['images_needed_for_steady_state']}"
        status = "current" if not reasons else (
            f'<span class="missing">stale: {escape("; ".join(reasons))}; <code>undense {command} '
            f'{escape(str(directory))}</code> refreshes it</span>')
        rows.append([name, written, holds, status])
    return "<h2>Stages</h2>" + table(["report", "written", "holds", "status"], rows, "text")


def model_section(report: dict) -> str:
    rows = [[escape(layer["name"]), escape(operation(layer)), "x".join(map(str, layer["shape"])), f"{layer['nnz']:,}",
             f"{1 - layer['density']:.1%}", f"{layer['weight_bits']}/{layer['act_bits']}/{layer['acc_bits'] or '-'}",
             layer["pe"], f"{layer['cycles']:,}"] for layer in report["layers"]]
    return ("<h2>The model</h2>" + table(["layer", "op", "shape", "nonzeros", "zeros", "bits w/a/acc", "PEs",
                                          "cycles"], rows)
            + f"<p>Folded for {escape(report['target'])} at {report['clock_mhz']:g} MHz: "
              f"{report['predicted_cycles_per_image']:,} cycles per image predicted (slowest layer "
              f"{escape(report['slowest_layer'])}), {report['total_pe']} processing elements.</p>")


def images_section(generated: dict | None, directory: Path, classes: int) -> str:
    """The grid generate wrote; for a class-conditional model (`classes` > 0) what each image was asked for."""
    if generated is None or not Path(generated["grid"]).is_file():
        return "<h2>Generated images</h2>" + missing("generate --backend rtl", directory)
    score = ("" if generated["quality_score"] is None
             else f"; quality score {generated['quality_score']:.2f} of 10")
    asked = ""
    if classes and generated.get("digit") is not None:
        asked = f", each asked for class {generated['digit']}"
    elif classes:
        asked = f", asked for the {classes} classes in turn (0 to {classes - 1} along each row)"
    return (f"<h2>Generated images</h2><img class=\"grid\" alt=\"generated images\" "
            f"src=\"{embedded_png(Path(generated['grid']))}\"><p>{generated['images']} images from random latents "
            f"(seed {generated['seed']}){asked} on the <b>{escape(generated['backend'])}</b> backend{score}.</p>")


def simulation_section(sim: dict | None, directory: Path) -> str:
    if sim is None:
        return "<h2>Simulation</h2>" + missing("sim", directory)
    verdict = "bit-exact against the golden executor" if sim["mismatches"] == 0 else (
        f'<span class="missing">{sim["mismatches"]} values differ from golden</span>')
    measured = "in steady state" if sim.get("steady_state", True) else (
        f'<span class="missing">over {sim["images"]:,} image{"s" * (sim["images"] != 1)}, not a steady state, '
        f'which needs {sim["images_needed_for_steady_state"]:,}: <code>undense sim {escape(str(directory))} -n '
        f'{sim["images_needed_for_steady_state"]}</code></span>')
    return (f"<h2>Simulation</h2><p>{images(sim['images'])} on the RTL (Verilator): {verdict}. "
            f"{sim['cycles_per_image']:,.0f} cycles per image {measured} (ideal "
            f"{sim['ideal_cycles_per_image']:,.0f}, predicted {sim['predicted_cycles_per_image']:,}); first image "
            f"after {sim['first_image_latency_cycles']:,} cycles.</p>")


def resources_section(compiled: Compiled) -> str:
    directory, compile_report = compiled.directory, compiled.report
    estimate, capacity = compile_report["estimate"], compile_report["capacity"]
    synth, resources_from = resources(compiled)
    used = synth if resources_from == SYNTH_REPORT else None
    rows = []
    for resource in ("lut", "ff", "dsp", "bram", "spram"):
        if not estimate.get(resource) and not capacity.get(resource):
            continue
        measured = used[resource] if used else estimate[resource]
        rows.append([resource, f"{estimate[resource]:,}", f"{used[resource]:,}" if used else "-",
                     f"{capacity[resource]:,}" if capacity.get(resource) else "-",
                     share_bar(measured, capacity[resource]) if capacity.get(resource) else ""])
    html = "<h2>Resources and timing</h2>" + table(["resource", "estimated", "synthesized", "device has", "share"],
                                                   rows)
    if used is None:
        return html + missing("synth", directory)
    met = "met" if used["timing_met"] else '<span class="missing">not met</span>'
    return html + (f"<p>Fmax {used['fmax_mhz']:.1f} MHz after place and route: timing {met} at "
                   f"{used['clock_mhz']:g} MHz ({escape(used['tools']['yosys'])}; {escape(used['tools']['nextpnr'])})."
                   "</p>")


def energy_section(power: dict | None, directory: Path) -> str:
    if power is None or not (directory / "power.png").is_file():
        return "<h2>Energy per image</h2>" + missing("power", directory)
    if "fpga_j_per_image_range" not in power:
        return ("<h2>Energy per image</h2><p class=\"missing\">power.json was written by an older undense, without "
                f"ranges or one image alone: <code>undense power {escape(str(directory))}</code> writes it again.</p>")
    fpga, floor, reference = power["fpga"], power["floor"], power["gpu"]
    rows = [[escape(part), f"{joules * 1e9:,.2f}", f"{joules / fpga['j_per_image']:.1%}"]
            for part, joules in fpga["breakdown_j"].items()]
    gpu_rows = [[escape(way), *figures] for way, *figures in gpu_variant_rows(power["gpu_detail"])]
    part_rows = [[escape(part["device"]) + (" (compiled for)" if part["compiled_for"] else ""),
                  "yes" if part["fits"] else f"no: short of {escape(', '.join(part['short']))}",
                  f"{part['static_w'] * 1e3:,.1f}",
                  spread(part["j_per_image_range"]) if part["fits"] else "-",
                  spread(part["one_image_j_range"]) if part["fits"] and part["one_image_j_range"] else "-"]
                 for part in power.get("parts", [])]
    comparison = [["at the GPU's best batch", spread(power["fpga_j_per_image_range"]) + " streaming",
                   spread(reference["j_per_image_best_range"]) + f" at batch {reference['best_batch']:,}",
                   ratios(power["ratio_best_range"])],
                  ["one image at a time", spread(power["fpga_one_image_j_range"]) + " alone",
                   spread(reference["j_per_image_batch1_range"]) + " at batch 1", ratios(power["ratio_batch1_range"])]]
    reasons = stale_reasons(directory, power)
    stale = "" if not reasons else (
        f'<p class="missing">Stale: {escape("; ".join(reasons))}. <code>undense power {escape(str(directory))}'
        "</code> computes it again from the reports as they are now.</p>")
    measured = "".join(f"<p class=\"quote\">{escape(other['sentence'])}</p>"
                       for other in power.get("measured_gpus", {}).values())
    return (f"<h2>Energy per image</h2>{stale}<p class=\"quote\">{escape(power['sentence'])}</p>{measured}"
            f"<img class=\"plot\" alt=\"energy breakdown\" src=\"{embedded_png(directory / 'power.png')}\">"
            + table(["part", "nJ per image", "share"], rows)
            + f"<p>{fpga['images_per_second']:,.0f} images/s at {fpga['average_power_w'] * 1e3:,.2f} mW, "
              f"{fpga['images_per_joule']:,.0f} images per joule. The ASIC floor for the same MACs and memory "
              f"accesses is {floor['j_per_image'] * 1e9:,.2f} nJ ({number(floor['fpga_over_floor'])}x less). "
              f"Resources from {escape(fpga['resources_from'])}.</p>"
            + f"<h3>Against {escape(reference['gpu'])} ({escape(reference['source'])})</h3>"
            + "<p class=\"small\">Every figure is typical (low-high): low with every coefficient at the end that "
              "favours that side, high at the other; a ratio runs from the end least favourable to the FPGA "
              "(the GPU's low, the FPGA's high) to the most.</p>"
            + table(["comparison", "FPGA", "GPU at its best", "GPU / FPGA"], comparison)
            + (table(["GPU kernels", "precision", "uJ at batch 1", "best batch", "uJ at the best batch"], gpu_rows)
               if gpu_rows else "")
            + "<h3>The same design on each part of the family</h3>"
            + table(["part", "fits", "static mW", "uJ per image streaming", "one image alone"], part_rows))


def assumptions_section(power: dict | None) -> str:
    if power is None or "fpga_j_per_image_range" not in power:
        return ""
    coefficients = power["fpga"]["coefficients"]
    rows = [[escape(name), with_range(entry), escape(entry["source"]), escape(entry.get("derivation", ""))]
            for name, entry in coefficients.items() if isinstance(entry, dict)]
    spec = power["gpu_detail"].get("spec", {})
    gpu_rows = [[escape(name), with_range(entry), escape(entry["source"])]
                for name, entry in spec.items() if isinstance(entry, dict)]
    html = ("<h2>Every assumption behind the energy figures</h2><p class=\"small\">FPGA coefficients of the "
            f"{escape(coefficients['family'])} family (pJ per event, W for static power), typical (low-high), from "
            "sim/data/energy.json:</p>"
            + table(["coefficient", "value", "source", "derivation"], rows, "text"))
    if gpu_rows:
        html += ("<p class=\"small\">GPU figures, typical (low-high), from sim/data/gpus.json:</p>"
                 + table(["figure", "value", "source"], gpu_rows, "text"))
    return html


def with_range(entry: dict) -> str:
    """A coefficient's typical value, and its low and high ends where it has them."""
    ends = f" ({entry['low']:g}-{entry['high']:g})" if "low" in entry and "high" in entry else ""
    return f"{entry['value']:g}{ends}"


def render(compiled: Compiled) -> str:
    directory = compiled.directory
    compile_report = compiled.report
    power = load_json(directory, POWER_REPORT)
    sections = [
        stages_section(directory),
        model_section(compile_report),
        images_section(load_json(directory, GENERATE_REPORT), directory, compiled.graph.condition_classes),
        simulation_section(load_json(directory, SIM_REPORT), directory),
        resources_section(compiled),
        energy_section(power, directory),
        assumptions_section(power),
    ]
    title = f"undense: {escape(model_name(directory))} on {escape(compiled.target.device)}"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{title}</h1><p class=\"small\">Build dir "
            f"<code>{escape(str(directory))}</code>, page written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
            + "".join(sections) + "</body></html>\n")


def write_report(compiled: Compiled) -> Path:
    path = compiled.directory / REPORT_PAGE
    path.write_text(render(compiled))
    return path
