"""Readable terminal tables of the reports."""
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from undense.runtime.figures import GPU_COLUMNS, gpu_variant_rows, spread


def print_compile_report(report: dict, console: Console | None = None) -> None:
    table = Table(title=f"compiled for {report['target']} at {report['clock_mhz']:g} MHz")
    for column in ("layer", "then", "shape", "nnz", "density", "w/a/acc", "PEs", "cycles"):
        table.add_column(column, justify="left" if column in ("layer", "then") else "right", no_wrap=True)
    for layer in report["layers"]:
        then = "" if layer["activation"] == "identity" else layer["activation"]
        bits = f"{layer['weight_bits']}/{layer['act_bits']}/{layer['acc_bits'] or '-'}"
        shape = ("x".join(map(str, layer["shape"])) if "in_shape" not in layer or layer["op"] == "dense" else
                 f"{'x'.join(map(str, layer['in_shape']))}>{'x'.join(map(str, layer['out_shape']))}")
        unit = layer.get("hardware_unit", True)
        table.add_row(layer["name"] if layer["op"] == "dense" else f"{layer['name']} ({layer['op']})", then,
                      shape, f"{layer['nnz']:,}", f"{layer['density']:.1%}", bits,
                      str(layer["pe"]) if unit else "no unit", f"{layer['cycles']:,}" + ("" if unit else "*"))
    (console or Console()).print(table)
    if not all(layer.get("hardware_unit", True) for layer in report["layers"]):
        (console or Console()).print(
            "* a Conv of stride above 1 has no hardware unit (rtl, sim and synth refuse it; golden runs it): its "
            "cycles are a Dense unit's over its matrix", highlight=False)
    if any("kernel" in layer for layer in report["layers"]):
        (console or Console()).print(
            f"per image the model needs {report['total_macs']:,} multiplies (no padding, no inserted zeros) where a "
            f"dense implementation does {report['total_dense_macs']:,}", highlight=False)
    (console or Console()).print(
        f"predicted {report['predicted_cycles_per_image']:,} cycles per image (slowest layer "
        f"{report['slowest_layer']}), {report['predicted_images_per_second']:,.0f} images/s; "
        f"{report['total_pe']} PEs, {report['weight_memory_bits']:,} bits of weight memory", highlight=False)
    choice = report.get("target_choice", {})
    if choice.get("asked") == "auto":
        (console or Console()).print(f"--target auto picked {choice['picked']}: {choice['rule']} (compile.json's "
                                     "target_choice lists each target and why)", highlight=False)
    print_calibration(report["calibration"], console)


def print_calibration(record: dict, console: Console | None = None) -> None:
    """Where the calibration came from and by which rule, its coverage, and a warning where that is poor;
    soft-wrapped, so that no line break splits the command the warning suggests."""
    console = console or Console()
    count = f"{record['samples']:,} samples"
    origin = {"bundled": f"{count} from {record['path']} (next to the model)",
              "file": f"{count} from {record['path']}",
              "normal": f"{count} of N(0, I) (normal:{record['samples']}, seed {record['seed']})",
              "array": f"{count} given as an array",
              "none": "none: the model fixes every tensor's quantization"}[record["source"]]
    console.print(escape(f"calibration: {origin}; rule {record['rule']}"), highlight=False, soft_wrap=True)
    if record["latent_input"]:
        low, high = record["input_range"]
        console.print(f"coverage: the input range [{low:.2f}, {high:.2f}] holds {record['value_inside']:.3%} of "
                      f"N(0, 1) values and {record['latent_inside']:.2%} of whole latents; "
                      f"{record['saturated_latents']:.1%} of {record['fresh_latents']:,} fresh latents saturate "
                      "somewhere", highlight=False, soft_wrap=True)
    else:
        console.print(escape(f"coverage: not measured: {record['latent_input_reason']}"), highlight=False,
                      soft_wrap=True)
    if record["warning"]:
        console.print(f"[yellow]Warning:[/] {escape(record['warning'])}", highlight=False, soft_wrap=True)


def print_sim_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    verdict = "[green]bit-exact[/]" if report["mismatches"] == 0 else f"[red]{report['mismatches']} mismatches[/]"
    console.print(f"{report['images']:,} image{'s' * (report['images'] != 1)}: {verdict} against golden",
                  highlight=False)
    if report["steady_state"]:
        measured = "in steady state"
    else:
        measured = (f"over {report['images']:,} image{'s' * (report['images'] != 1)}, [yellow]not a steady "
                    f"state[/], which needs {report['images_needed_for_steady_state']:,}")
    console.print(f"{report['cycles_per_image']:,.0f} cycles per image {measured} (ideal "
                  f"{report['ideal_cycles_per_image']:,.0f}, predicted {report['predicted_cycles_per_image']:,.1f}); "
                  f"first image after {report['first_image_latency_cycles']:,} cycles; simulated at "
                  f"{report['sim_cycles_per_second']:,.0f} cycles/s", highlight=False)
    totals = report["events_total"]
    agreement = "as golden predicts" if not report["event_mismatches"] else "[red]NOT as golden predicts[/]"
    console.print(f"events {agreement}: {totals.get('stream_in', 0):,} events in (zeros stay home), "
                  f"{totals.get('macs', 0):,} MACs, {totals.get('weight_reads', 0):,} weight reads, "
                  f"{totals.get('acc_updates', 0):,} accumulator updates", highlight=False)


def print_synth_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    capacity = report["capacity"]
    estimate = report["estimate"]
    table = Table(title=f"{report['device']} ({report['target']})")
    for column in ("resource", "estimated", "used", "of", "share"):
        table.add_column(column, justify="left" if column == "resource" else "right")
    for resource in ("lut", "ff", "dsp", "bram", "spram", "lutram"):
        available = capacity.get(resource)
        if not report[resource] and not available:
            continue
        share = f"{report[resource] / available:.1%}" if available else ""
        estimated = f"{estimate[resource]:,}" if resource in estimate else ""
        table.add_row(resource, estimated, f"{report[resource]:,}", f"{available:,}" if available else "", share)
    console.print(table)
    met = "[green]met[/]" if report["timing_met"] else "[red]NOT met[/]"
    console.print(f"Fmax {report['fmax_mhz']:.1f} MHz: timing {met} at {report['clock_mhz']:g} MHz; "
                  f"Yosys {report['wall_seconds']['yosys']:.0f} s, nextpnr {report['wall_seconds']['nextpnr']:.0f} s "
                  f"({report['placer']} placer)",
                  highlight=False)
    for kind, owners in report["placement"].items():
        console.print(f"{kind}: " + ", ".join(f"{owner} {count}" for owner, count in owners.items()), highlight=False)


def print_power_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    fpga, floor = report["fpga"], report["floor"]
    table = Table(title=f"energy per image on {fpga['device']} at {fpga['clock_mhz']:g} MHz")
    for column in ("part", "nJ per image", "share"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, joules in fpga["breakdown_j"].items():
        table.add_row(part, f"{joules * 1e9:,.2f}", f"{joules / fpga['j_per_image']:.1%}")
    console.print(table)
    alone = fpga["one_image"]
    console.print(f"streaming: {spread(report['fpga_j_per_image_range'])} per image (every coefficient at its low, "
                  f"typical and high end); one image alone, over its {alone['cycles']:,}-cycle latency: "
                  f"{spread(report['fpga_one_image_j_range'])}", highlight=False)
    gpus = Table(title=f"{report['gpu']['gpu']} ({report['gpu']['source']}), uJ per image: typical (low-high)")
    for column in GPU_COLUMNS:
        gpus.add_column(column, justify="left" if column in ("kernels", "precision") else "right")
    for row in gpu_variant_rows(report["gpu_detail"]):
        gpus.add_row(*row)
    if gpus.row_count:
        console.print(gpus)
    parts = Table(title="the same design on each part of the family, uJ per image: typical (low-high)")
    for column in ("part", "fits", "streaming", "one image alone"):
        parts.add_column(column, justify="left" if column in ("part", "fits") else "right")
    for part in report["parts"]:
        marker = " (compiled for)" if part["compiled_for"] else ""
        parts.add_row(f"{part['device']}{marker}", "yes" if part["fits"] else f"no: {', '.join(part['short'])}",
                      spread(part["j_per_image_range"]) if part["fits"] else "-",
                      spread(part["one_image_j_range"]) if part["fits"] and part["one_image_j_range"] else "-")
    console.print(parts)
    console.print(f"{fpga['images_per_second']:,.0f} images/s at {fpga['average_power_w'] * 1e3:,.2f} mW: "
                  f"{fpga['images_per_joule']:,.0f} images per joule (resources from {fpga['resources_from']}); "
                  f"the ASIC floor for the same MACs and memory accesses is {floor['j_per_image'] * 1e9:,.2f} nJ, "
                  f"{floor['fpga_over_floor']:,.0f}x below", highlight=False)
