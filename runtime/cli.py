"""The `undense` command line: a thin layer over the Python API (parsing, progress, messages)."""
import os
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from undense.compiler.targets import AUTO_TARGET, DEFAULT_TARGET, targets
from undense.errors import UndenseError
from undense.hw.synth import PLACERS, STATIC_PLACER_BRAM_SHARE
from undense.runtime.baseline import LOOP_SECONDS, RUNTIMES
from undense.runtime.tables import print_compile_report, print_power_report, print_sim_report, print_synth_report

console = Console(stderr=True)  # progress and messages; results go to stdout


EXIT_USER_ERROR = 2  # the input is wrong: one `Error:` line says what, where and what to do
EXIT_INTERNAL_ERROR = 3  # a bug in undense: one line, the traceback in a file
STEP = "undense.step"  # ctx.meta key: the step a command has reached, for an internal error's message


class OneLineUsageError(click.ClickException):
    """A usage error as one `Error:` line, like every other user error, with the command's help named in it
    (click's own shows the usage and a hint on lines of their own)."""

    exit_code = EXIT_USER_ERROR

    @classmethod
    def of(cls, error: click.UsageError) -> "OneLineUsageError":
        where = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        return cls(error.format_message() + where)


class UndenseGroup(click.Group):
    """Turns an UndenseError anywhere below into one `Error:` line on stderr and exit status 2, a usage error
    into one such line too, and any other exception (a bug) into one line naming the stage, with the traceback
    saved to a file, and exit status 3; with --debug the traceback itself."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `undense` alone: the help
        except click.UsageError as error:
            raise OneLineUsageError.of(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UndenseError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.UsageError as error:  # of a command: an unknown one, or its arguments and options
            raise OneLineUsageError.of(error) from None
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise  # click's own: Ctrl-C, --help and --version
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            stage = ctx.invoked_subcommand or "undense"
            if ctx.meta.get(STEP):
                stage = f"{stage} ({ctx.meta[STEP]})"
            click.echo(_internal_error_line(stage, error), err=True)
            sys.exit(EXIT_INTERNAL_ERROR)


def _internal_error_line(stage: str, error: Exception) -> str:
    """The one line a bug gets, with the traceback written to a file in the temporary folder to report."""
    import platform
    import tempfile
    import time
    import traceback
    from importlib import metadata

    text = str(error).strip()
    summary = f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__
    try:
        handle, path = tempfile.mkstemp(prefix=f"undense-crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(handle, "w") as file:
            file.write(f"undense {metadata.version('undense')}: internal error in {stage}\n"
                       f"command: {' '.join(sys.argv)}\n"
                       f"python {platform.python_version()} on {platform.platform()}\n\n"
                       + "".join(traceback.format_exception(error)))
        where = f"the traceback is in {path}"
    except OSError:
        where = "run the command again with `undense --debug ...` to see the traceback"
    return (f"internal error in {stage}: {summary} -- a bug in undense, not a problem with your input; "
            f"{where}: please report it on undense's issue tracker with that traceback")


def _output_file(path: Path, option: str, suffix: str | None = None) -> Path:
    """An output file the command can write, checked before its work: the suffix it must have, and a folder that
    exists or can be made (the command makes it when it writes the file)."""
    if suffix is not None and path.suffix.lower() != suffix:
        raise UndenseError(f"{option} {path}: name a {suffix} file, e.g. {path.with_suffix(suffix).name}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UndenseError(f"{option} {path}: {folder} is a file, so no folder can be made there; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UndenseError(f"{option} {path}: {folder} is not writable; choose another path")
    return path


def _progress(status, doing: str | None = None):
    """A progress callback: shows each step on the status line and remembers it for an internal error's message."""
    meta = click.get_current_context().meta

    def update(step: str) -> None:
        status.update(f"{doing}: {step}" if doing else step)
        meta[STEP] = step
    return update


@click.group(cls=UndenseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="undense")
@click.option("--debug", is_flag=True, help="on an internal error (a bug), print its traceback")
def main(debug):
    """undense: sparse generative models from ONNX to FPGA accelerators, bit-exact, with joules per image.

    Exit status: 0 done, 1 `doctor` found a tool missing, 2 a problem with the input (one `Error:` line),
    3 an internal error (a bug: one line, and the traceback in a file to report)."""


@main.command()
def doctor():
    """Print every tool the flow uses with its version; exit 1 if anything is missing or too old."""
    from undense.runtime.doctor import TOOLS, python_packages

    packages = list(python_packages())
    tools = []
    for name, check, slow_first_time in TOOLS:
        note = " (its first run compiles it to machine code: tens of seconds)" if slow_first_time else ""
        with console.status(f"checking {name}{note}"):
            tools.append(check())
    report = Console(highlight=False, soft_wrap=True)
    width = max(len(c.name) for c in packages + tools)
    for title, checks in (("Python packages", packages), ("Tools", tools)):
        report.print(f"[bold]{title}[/]")
        for c in checks:
            mark = "[green]ok     [/]" if c.ok else "[red]MISSING[/]"
            report.print(f"  {mark} {c.name:<{width}}  {c.version or '-'}")
            if not c.ok:
                report.print(f"          {c.problem}; fix: {c.fix}")
    problems = [c for c in packages + tools if not c.ok]
    report.print(f"{len(packages) + len(tools) - len(problems)} of {len(packages) + len(tools)} ready")
    sys.exit(1 if problems else 0)


def _layer_bits(values: tuple[str, ...]) -> dict[str, int]:
    parsed = {}
    for value in values:
        name, _, bits = value.rpartition("=")
        if not name or not bits.isdigit():
            raise UndenseError(f"--layer-bits '{value}': write LAYER=BITS, e.g. --layer-bits fc2=4")
        parsed[name] = int(bits)
    return parsed


@main.command("compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="build dir to write")
@click.option("--bits", default=8, show_default=True, help="weight and activation bits (2 to 8)")
@click.option("--layer-bits", multiple=True, metavar="LAYER=BITS", help="bits for one layer; repeatable")
@click.option("--calib", metavar="FILE.npy|normal:N",
              help="calibration inputs (.npy, [N, features]), or normal:N for N latents drawn from N(0, I); "
                   "default: calib_latents.npy next to the model")
@click.option("--target", "target_name", default=DEFAULT_TARGET, show_default=True,
              type=click.Choice([*targets(), AUTO_TARGET]),
              help="FPGA to fold for; auto: the smallest that holds the model at the best throughput (or at "
                   "--images-per-second)")
@click.option("--images-per-second", type=float, help="fold for this throughput instead of the fastest that fits")
def compile_command(model, output, bits, layer_bits, calib, target_name, images_per_second):
    """Compile an ONNX model: import, quantize, sparse-encode, fold; write the build dir."""
    from undense.compiler.builddir import later_results
    from undense.runtime.compiled import compile

    replaced = later_results(output)
    with console.status("compiling") as status:
        compiled = compile(model, output, bits=bits, layer_bits=_layer_bits(layer_bits), calibration=calib,
                           target_name=target_name, images_per_second=images_per_second,
                           progress=_progress(status, "compiling"))
    print_compile_report(compiled.report)
    if replaced:
        click.echo(f"replaced the earlier build in {output}, and with it its {', '.join(replaced)}")
    click.echo(f"build dir: {output}")


@main.command("run")
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="inputs (.npy, [N, features])")
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="outputs (.npy; its folder is made if missing)")
@click.option("--backend", default="golden", show_default=True, type=click.Choice(["golden", "rtl"]))
def run_command(build_dir, input_path, output, backend):
    """Run a compiled model on inputs from a .npy file; write its outputs as .npy."""
    from undense.runtime.compiled import load, load_inputs

    _output_file(output, "-o", ".npy")
    outputs = load(build_dir).run(load_inputs(input_path), backend=backend)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, outputs)
    click.echo(f"{len(outputs)} outputs ({backend}) -> {output}")


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rtl(build_dir):
    """Write the accelerator's Verilog into DIR/rtl/ (with its lint waivers), built for the target's family, with
    event counters on ev_* ports for simulation (`synth` leaves them out); where weights sit in SPRAM, also the
    bytes its weight port must load first (weights.bin)."""
    from undense.hw.emit import WEIGHTS_FILE, emit_verilog
    from undense.runtime.compiled import load

    compiled = load(build_dir)
    with console.status("generating Verilog with Amaranth"):
        path = emit_verilog(compiled.graph, build_dir / "rtl", family=compiled.target.family)
    weights = path.parent / WEIGHTS_FILE
    click.echo(f"Verilog -> {path}" + (f", weights to load -> {weights}" if weights.is_file() else ""))


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "count", default=64, show_default=True, type=click.IntRange(min=1),
              help="number of inputs to stream through")
@click.option("--seed", default=0, show_default=True, help="seed of the random inputs")
@click.option("--wave", type=click.Path(dir_okay=False, path_type=Path),
              help="write a waveform (.fst or .vcd; its folder is made if missing)")
def sim(build_dir, count, seed, wave):
    """Simulate the accelerator cycle by cycle (Verilator) on N random inputs, bit-exact against golden."""
    from undense.runtime.compiled import load
    from undense.sim.bulk import trace_flags
    from undense.sim.simulate import mismatch_error, write_report

    if wave is not None:
        trace_flags(_output_file(wave, "--wave"))  # refuses a suffix it cannot write
    compiled = load(build_dir)
    with console.status("simulating") as status:
        result = compiled.simulate(compiled.random_inputs(count, seed), wave,
                                   progress=_progress(status))
    path = write_report(build_dir, result.report)
    print_sim_report(result.report)
    click.echo(f"-> {path}" + (f", waveform -> {wave}" if wave is not None and wave.is_file() else ""))
    if not result.report["steady_state"]:
        needed = result.report["images_needed_for_steady_state"]
        click.echo(f"Warning: {count} image{'s' * (count != 1)} cannot show a steady state, which needs {needed}; "
                   f"`undense power` needs a run of `undense sim {build_dir} -n {needed}` or more", err=True)
    if result.report["mismatches"]:
        raise mismatch_error(result.report)
    if result.report["event_mismatches"]:
        raise UndenseError(f"the RTL's event counts differ from golden's prediction: "
                           f"{'; '.join(result.report['event_mismatches'])}")


@main.command("cocotb")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--bench", type=click.Path(path_type=Path),
              help="your own cocotb bench (FILE.py, docs/hardware.md)  [default: the shipped top-level bench]")
@click.option("--simulator", default="verilator", show_default=True, type=click.Choice(["verilator", "icarus"]))
@click.option("--wave", type=click.Path(dir_okay=False, path_type=Path),
              help="write a waveform: .fst or .vcd on Verilator, .fst on Icarus")
@click.option("-n", "count", default=8, show_default=True, help="number of random inputs the bench gets")
@click.option("--seed", default=0, show_default=True, help="seed of the inputs and of the input gaps and stalls")
def cocotb_command(build_dir, bench, simulator, wave, count, seed):
    """Run a cocotb testbench on the accelerator's Verilog: the shipped one (random input gaps, output
    back-pressure, every output checked against golden) or your own; writes DIR/cocotb.json."""
    from undense.runtime.cocotb_bench import failure, run_bench, summary, write_report
    from undense.runtime.compiled import load

    compiled = load(build_dir)
    with console.status("cocotb") as status:
        report = run_bench(compiled, count, seed, bench, simulator, wave, progress=_progress(status, "cocotb"))
    path = write_report(build_dir, report)
    for line in summary(report):
        click.echo(line)
    click.echo(f"-> {path}" + (f", waveform -> {report['wave']}" if report["wave"] else ""))
    problem = failure(report)
    if problem is not None:
        raise problem


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", "target_name", help="FPGA to synthesize for  [default: the one the model was compiled for]")
@click.option("--placer", type=click.Choice(PLACERS),
              help="nextpnr's placer  [default: static where the design fills over "
                   f"{STATIC_PLACER_BRAM_SHARE:.0%} of the part's block RAMs, else heap]")
def synth(build_dir, target_name, placer):
    """Synthesize (Yosys) and place and route (nextpnr) the accelerator for an FPGA; writes DIR/synth.json."""
    from undense.runtime.compiled import load
    from undense.runtime.synthesis import synthesize, write_report

    compiled = load(build_dir)
    with console.status("synthesizing") as status:
        report = synthesize(compiled, target_name, progress=_progress(status), placer=placer)
    path = write_report(build_dir, report)
    print_synth_report(report)
    click.echo(f"-> {path}")


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "count", default=64, show_default=True, type=click.IntRange(min=1), help="number of images")
@click.option("-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="grid (.png, or another image suffix; its folder is made if missing)  [default: DIR/grid.png]")
@click.option("--backend", default="golden", show_default=True, type=click.Choice(["golden", "rtl"]))
@click.option("--seed", default=0, show_default=True, help="seed of the random latents")
@click.option("--digit", type=int, help="for a class-conditional model: the class to draw  [default: each in turn]")
def generate(build_dir, count, output, backend, seed, digit):
    """Generate images from random latents on a backend (golden, or the RTL in simulation): a PNG grid and the
    batch's quality score where the digit classifier knows the outputs; DIR/generate.json records them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from undense.runtime.compiled import load
    from undense.runtime.generate import generate as run_generate
    from undense.runtime.generate import picture, write_grid
    from undense.runtime.images import check_image_path

    output = _output_file(check_image_path(output or build_dir / "grid.png"), "-o")
    compiled = load(build_dir)
    drawn = picture(compiled)  # an output that is not a picture is refused before any image is made
    compiled.random_inputs(1, seed, digit)  # and a --digit the model cannot take
    columns = (TextColumn(f"generating on {backend}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("images", total=count)
        images = run_generate(compiled, count, backend, seed, advance=lambda n: progress.advance(task, n),
                              digit=digit)
    report = write_grid(compiled, drawn, images, backend, seed, output, digit)
    low, high = report["value_range"]
    click.echo(f"{count} images ({backend}) as {report['layout']}, values [{low:.3g}, {high:.3g}] "
               f"({report['value_range_from']}) -> {output}")
    if report["quality_score"] is None:
        click.echo(f"no quality score: {report['quality_note']}")
    else:
        click.echo(f"quality score {report['quality_score']:.2f} of 10; smallest class share "
                   f"{min(report['class_shares']):.1%}")


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--gpu", "gpu_name", default="H100 SXM", show_default=True,
              help="GPU to compare with (sim/data/gpus.json)")
def power(build_dir, gpu_name):
    """Energy per image on the FPGA (from DIR/sim.json and synth.json) against a GPU; writes DIR/power.json."""
    from undense.runtime.compiled import load
    from undense.runtime.power import power_report, write_report

    report = power_report(load(build_dir), gpu_name)
    path = write_report(build_dir, report)
    print_power_report(report)
    click.echo(report["sentence"])
    for other in report["measured_gpus"].values():
        click.echo(other["sentence"])
    click.echo(f"-> {path}, plot -> {path.with_suffix('.png')}")


@main.command()
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(build_dir):
    """Gather the build dir's reports into one self-contained HTML page, DIR/report.html (opens offline)."""
    import json

    from undense.runtime.compiled import load
    from undense.runtime.report import write_report

    compiled = load(build_dir)
    path = write_report(compiled)
    click.echo(f"report -> {path}")
    power = compiled.directory / "power.json"
    if power.is_file():  # the line to quote, last
        click.echo(json.loads(power.read_text())["sentence"])


@main.command()
@click.option("--measure", "model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ONNX model to run on this machine's GPU")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), default="torch", show_default=True,
              help="torch: eager, CUDA graph and torch.compile (onnx2torch); onnxruntime: its CUDA provider")
@click.option("--seconds", type=click.FloatRange(min=1.0), default=LOOP_SECONDS, show_default=True,
              help="length of each batch size's timed loop")
@click.option("-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("baseline.json"),
              show_default=True, help="JSON to write")
def baseline(model, runtime, seconds, output):
    """Measure joules per image of a float ONNX model, as given and in fp16, on this machine's NVIDIA GPU (NVML)."""
    import json

    from undense.runtime.baseline import BATCHES, measure

    with console.status(f"running {model.name} with {runtime}, as given and in fp16, at batch sizes "
                        f"{', '.join(map(str, BATCHES))}, {seconds:g} s each"):
        result = measure(model, runtime=runtime, seconds=seconds)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for variant, figures in result["variants"].items():
        click.echo(f"{result['gpu']} (driver {result['driver']}), {variant}: "
                   f"{figures['j_per_image_batch1'] * 1e6:,.3g} uJ per image at batch 1, "
                   f"{figures['j_per_image_best'] * 1e6:,.3g} uJ at batch {figures['best_batch']:,}")
    click.echo(f"-> {output}")


@main.command()
@click.option("-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench.json"),
              show_default=True, help="JSON to write")
@click.option("--repeats", default=5, show_default=True, help="timed runs of each case, after one warm-up")
def bench(output, repeats):
    """Measure the flow's figures (compile time, ...) on this machine and write them as JSON."""
    import json

    from undense.runtime.bench import run_bench

    with console.status("benchmarking") as status:
        figures = run_bench(repeats=repeats, progress=_progress(status, "benchmarking"))
    output.write_text(json.dumps(figures, indent=2) + "\n")
    for case, figure in figures["compile"].items():
        click.echo(f"compile {case} ({figure['model']}): median {figure['median_s']:.3f} s "
                   f"over {figure['runs']} runs")
    fidelity = figures["fidelity"]
    click.echo(f"golden vs float on {fidelity['samples']} latents: mean |pixel error| "
               f"{fidelity['mean_abs_pixel_error']:.4f}, quality {fidelity['golden_score']:.2f} vs "
               f"{fidelity['float_score']:.2f} ({fidelity['golden_to_float_score']:.1%})")
    for name, figure in fidelity["calibrations"].items():
        click.echo(f"  calibrated on {name} ({figure['calibration_samples']:,} samples): worst |pixel error| "
                   f"{figure['max_abs_pixel_error']:.4f} ({figure['max_error_share_of_range']:.1%} of the output "
                   f"range), mean {figure['mean_abs_pixel_error']:.4f} ({figure['mean_error_share_of_range']:.2%})")
    cpu = figures["cpu_baseline"]
    click.echo(f"onnxruntime on this CPU ({cpu['cpus']} cores): {cpu['batch1_images_per_second']:,.0f} images/s at "
               f"batch 1, {cpu['best_images_per_second']:,.0f} at batch {cpu['best_batch']:,}")
    mutations = figures["mutations"]
    click.echo(f"mutation fuzz: {mutations['count']:,} damaged models in {mutations['seconds']:.0f} s: "
               f"{mutations['exit_0']:,} compiled and ran, {mutations['exit_2']:,} refused in one Error: line, "
               f"{mutations['failures']} failures")
    for case, figure in figures["simulation"].items():
        click.echo(f"simulate {case} ({figure['images']:,} images): {figure['cycles_per_image']:,.1f} cycles per "
                   f"image, {figure['cycles_over_prediction']:.1%} of the predicted "
                   f"{figure['predicted_cycles_per_image']:,.1f}, {figure['cycles_over_ideal']:.1%} of the ideal "
                   f"{figure['ideal_cycles_per_image']:,.1f}; {figure['sim_cycles_per_second']:,.0f} simulated "
                   f"cycles/s; {figure['mismatches']} mismatches")
    fresh = figures["simulation"]["bundled"]["fresh_compile_rtl_and_sim_64_runs"]
    click.echo(f"undense compile, rtl and sim -n 64 from an empty cache: {fresh['median_s']:.0f} s (median of "
               f"{fresh['runs']}, {fresh['min_s']:.0f}-{fresh['max_s']:.0f} s)")
    top = figures["headline"]
    if "images_per_second" in top:
        click.echo(f"{top['target']} at {top['clock_mhz']:g} MHz: {top['images_per_second']:,.0f} images/s, "
                   f"{top['over_cpu']:.2f}x onnxruntime's best on this CPU ({top['cpu_images_per_second']:,.0f} at "
                   f"batch {top['cpu_batch']:,})")
    for target_name, figure in figures["energy"].items():
        click.echo(f"energy on {target_name}: {figure.get('sentence', 'no figure: see its synthesis in the JSON')}")
        for other in figure.get("measured_gpus", {}).values():
            click.echo(f"  measured: {other['sentence']}")
    g28 = figures["generator28"]
    sim28, top28 = g28["simulation"], g28["headline"]
    click.echo(f"28x28 generator on ecp5-85k: {sim28['images']:,} inputs, {sim28['mismatches']} mismatches; "
               f"{sim28['cycles_per_image']:,.0f} cycles per image ({sim28['cycles_over_prediction']:.1%} of the "
               f"predicted); {top28['clock_mhz']:g} MHz (timing met: {g28['synthesis']['timing_met']}), "
               f"{top28['images_per_second']:,.0f} images/s, {top28['over_cpu']:.2f}x onnxruntime's best here; "
               f"quality {g28['quality']['rtl_to_float_score']:.1%} of the float model's")
    click.echo(f"energy of the 28x28 generator: {g28['energy']['sentence']}")
    swept = figures["sweep"]
    click.echo(f"a sweep of {len(swept['points'])} points ({'; '.join(swept['points'])}): "
               + ", ".join(f"{run['wall_s']:,.0f} s on {workers} worker{'s' * (workers > 1)}"
                           for workers, run in swept["workers"].items())
               + f" ({swept['speedup_2_over_1']:.2f}x)")
    for other in g28["energy"]["measured_gpus"].values():
        click.echo(f"  measured: {other['sentence']}")
    click.echo(f"-> {output}")


def _listed(value: str, option: str, parse, expected: str, example: str) -> list:
    """A comma-separated option's values, parsed, in order, without repeats; one error line for any bad one."""
    try:
        values = [parse(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values:
        raise UndenseError(f"{option} '{value}': give {expected}, comma-separated, e.g. {option} {example}")
    return list(dict.fromkeys(values))


def _width(text: str) -> int:
    if not text.isdigit() or not 2 <= int(text) <= 8:
        raise ValueError(text)
    return int(text)


def _rate(text: str) -> float | None:
    if text == "fastest":
        return None
    rate = float(text)
    if not 0 < rate < float("inf"):
        raise ValueError(text)
    return rate


def point_line(point: dict) -> str:
    """A sweep point's figures (or its failure) on one line."""
    f, failure = point["figures"], point["failure"]
    if failure:
        return f"{point['label']}: {failure['kind']} ({failure['stage']}): {failure['message']}"
    quality = f.get("quality_to_float")
    return (f"{point['label']}: {f['j_per_image'] * 1e6:,.3g} uJ an image, {f['images_per_second']:,.0f} images/s, "
            f"{f['lut']:,} LUTs" + (f", quality {quality:.1%} of float" if quality is not None else ""))


@main.command("sweep")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bits", default="4,6,8", show_default=True, help="weight and activation bits of each point")
@click.option("--layer-bits", multiple=True, metavar="LAYER=BITS", help="bits for one layer in every point; repeatable")
@click.option("--target", "target_names", default="ecp5-25k,ecp5-85k,ice40-up5k", show_default=True,
              help=f"FPGAs, comma-separated: {', '.join([*targets(), AUTO_TARGET])}")
@click.option("--images-per-second", "rates", default="fastest", show_default=True,
              help="throughputs to fold for, comma-separated; 'fastest' folds for the best that fits")
@click.option("-n", "count", default=64, show_default=True, type=click.IntRange(min=1),
              help="random inputs each point simulates on the RTL, compared with golden")
@click.option("-o", "output", default=Path("sweep"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="folder of the sweep: sweep.json, sweep.png, sweep.html and each point's build")
@click.option("--workers", type=click.IntRange(min=1),
              help="points run at once  [default: this machine's CPUs; with --ray, the cluster's]")
@click.option("--ray", "ray_address", metavar="ADDRESS|auto",
              help="run the points as Ray tasks: auto joins the Ray runtime on this machine or starts one; an "
                   "address joins that cluster (pip install 'undense[cluster]')")
@click.option("--synth/--no-synth", default=True, show_default=True,
              help="place and route each point; without, resources and energy come from the compiler's estimate")
def sweep_command(model, bits, layer_bits, target_names, rates, count, output, workers, ray_address, synth):
    """Sweep a model's design space: every combination of bits, FPGA and throughput compiled, simulated
    bit-exact, synthesized, priced and scored; points already in DIR are not run again."""
    from undense.runtime import sweep_engines
    from undense.runtime.sweep import Settings, grid, sweep

    known = [*targets(), AUTO_TARGET]
    chosen = _listed(target_names, "--target", str, "FPGA names", "ecp5-25k,ice40-up5k")
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise UndenseError(f"--target {', '.join(unknown)}: unknown; choose from {', '.join(known)}")
    points = grid(_listed(bits, "--bits", _width, "bit widths from 2 to 8", "4,6,8"), chosen,
                  _listed(rates, "--images-per-second", _rate, "positive rates or 'fastest'", "fastest,20000"),
                  _layer_bits(layer_bits))
    settings = Settings(images=count, synthesize=synth)
    local_width = workers or os.cpu_count() or 1
    engine = (sweep_engines.local_pool(local_width) if ray_address is None
              else sweep_engines.ray_cluster(ray_address))
    with engine as submit:
        width = local_width if ray_address is None else workers or sweep_engines.cluster_cpus()
        where = f"a local pool of {width}" if ray_address is None else f"Ray ({ray_address}), {width} at once"
        with console.status("sweeping") as status:
            shown = []

            def show(state):
                if state.latest is not None and state.latest is not (shown or [None])[-1]:
                    shown.append(state.latest)
                    console.print(f"[{state.finished}/{state.total}] {point_line(state.latest)} "
                                  f"({state.latest['wall_s']:,.0f} s)", highlight=False, soft_wrap=True)
                eta = "" if state.eta_s is None else f", about {state.eta_s / 60:.0f} min left"
                status.update(f"sweep: {state.finished} of {state.total} points ({state.cached} from earlier runs, "
                              f"{state.failed} failed), {state.running} running{eta}")
            try:
                report = sweep(model, points, output, settings, submit, width, where, show)
            except KeyboardInterrupt:
                click.echo(f"interrupted: the points finished are kept in {output}; run the same command again to "
                           "run only the rest", err=True)
                sys.exit(1)  # as Ctrl-C ends every command
    for point in report["points"]:
        click.echo(point_line(point) + (f" [Pareto: {', '.join(point['pareto'])}]" if point["pareto"] else ""))
    summary = report["summary"]
    best = next((p for p in report["points"] if p["key"] == summary["best_within_quality"]), None)
    click.echo(f"{summary['points']} points: {summary['ran']} ran, {summary['cached']} from earlier runs, "
               f"{summary['failed']} failed, {summary['wall_s']:,.0f} s")
    click.echo("fewest joules at a quality within 5% of float: "
               + (f"{best['label']} ({best['figures']['j_per_image'] * 1e6:,.3g} uJ)" if best else "none"))
    click.echo(f"-> {output / 'sweep.json'}, {output / 'sweep.png'}, {output / 'sweep.html'}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-n", "count", default=64, show_default=True, type=click.IntRange(min=1), help="number of images")
@click.option("-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("samples.png"),
              show_default=True, help="grid to write (.png, or another image suffix; its folder is made if missing)")
@click.option("--seed", default=0, show_default=True, help="seed of the random latents")
@click.option("--digit", type=int, help="for a class-conditional model: the class to draw  [default: each in turn]")
def sample(model, count, output, seed, digit):
    """Run a float ONNX generator with onnxruntime on random latents: a PNG grid and its quality score where the
    digit classifier knows the outputs (drawn and scored as `undense generate` does)."""
    from undense.runtime.float_model import sample_picture
    from undense.runtime.images import check_image_path, save_grid
    from undense.runtime.quality import quality_score, unscored_reason

    _output_file(check_image_path(output), "-o")
    images, drawn = sample_picture(model, count, seed, digit)
    save_grid(images, output, drawn)
    click.echo(f"{count} images from {model} (float, onnxruntime) as {drawn.shape}, values {drawn.values} "
               f"-> {output}")
    unscored = unscored_reason(drawn.shape, drawn.values)
    if unscored is not None:
        click.echo(f"no quality score: {unscored}")
        return
    quality = quality_score(images)
    click.echo(f"quality score {quality.score:.2f} of 10; smallest class share {quality.min_class_share:.1%}")
