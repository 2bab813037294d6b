"""`undense synth`: a build dir's accelerator through Yosys and nextpnr (hw/synth.py), reported in DIR/synth.json."""
from pathlib import Path

from undense.compiler import builddir
from undense.compiler.resources import design_cost
from undense.compiler.targets import target
from undense.errors import UndenseError
from undense.hw.emit import emit_verilog
from undense.hw.synth import default_placer
from undense.hw.synth import synthesize as place_and_route
from undense.runtime.compiled import Compiled

SYNTH_REPORT = "synth.json"


def synthesize(compiled: Compiled, target_name: str | None = None, progress=lambda step: None,
               placer: str | None = None) -> dict:
    """Synthesize the compiled accelerator for `target_name` (by default the target it was folded for), placed
    with `placer` (by default hw/synth.default_placer's choice for the design)."""
    chosen = target(target_name or compiled.target.name)
    if chosen.family != compiled.target.family:
        raise UndenseError(f"{compiled.directory} was compiled for {compiled.target.name}: its memories are placed "
                           f"for {compiled.target.family.upper()}, not {chosen.family.upper()}; compile it again "
                           f"with --target {chosen.name}")
    progress("writing Verilog")
    folder = compiled.directory / "synth" / chosen.name
    # memories pinned for this family, its DSP blocks' registers, and no event counters: those are for simulation
    verilog = emit_verilog(compiled.graph, folder, count_events=False, family=chosen.family, primitives=True)
    estimate = design_cost(compiled.graph, chosen.family)
    placer = placer or default_placer(estimate, chosen.capacity())
    report = place_and_route(verilog, chosen, folder / "tools", placer, progress)
    return {**report, "estimate": estimate, "compiled_for": compiled.target.name}


def write_report(directory: Path, report: dict) -> Path:
    return builddir.write_report(directory, SYNTH_REPORT, report)
