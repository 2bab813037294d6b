"""Verilog from a compiled graph, through Amaranth's own back end."""
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from amaranth.back import rtlil, verilog

from undense.compiler.ir import QGraph
from undense.hw.shared import ModuleLibrary
from undense.hw.top import Accelerator

TOP_NAME = "undense_top"
WAIVERS = Path(__file__).parent / "data" / "waivers.vlt"
WEIGHTS_FILE = "weights.bin"
# a module and an instance in the Verilog Yosys writes (names escaped with a backslash where they need it)
MODULE = re.compile(r"^module \\?(\S+?) ?\(.*?^endmodule\n", re.M | re.S)
INSTANCE = re.compile(r"^  \\?(\S+) +\\?(\S+) +\(\n", re.M)


def emit_verilog(graph: QGraph, directory: str | Path, count_events: bool = True, family: str | None = None,
                 primitives: bool = False) -> Path:
    """Write DIR/undense_top.v and the lint waivers beside it (waivers.vlt); returns the Verilog's path.

    The ports are the top level's signature: clk, rst, i__valid/ready/payload, o__valid/ready/payload,
    and with `count_events` one ev_<layer>_<event> counter per layer and event (hw.top.event_ports): the build
    dir's Verilog has them, so that `undense rtl`, `sim` and the cocotb benches share one Verilog; synthesis
    builds its own without them.
    For an FPGA `family` the memories carry the placement the compiler's resource estimate chose; where that
    is SPRAM there is also a byte stream w__valid/ready/payload for the weights, and DIR/weights.bin holds the
    bytes it must take before the first image (hw/weight_loader.py), as a flash would hold them. With
    `primitives` (synthesis) the multipliers are the family's DSP blocks with their registers (hw/multiplier.py).
    Components built alike are one module, instantiated where each one sits (hw/shared.py).
    """
    directory = Path(directory)
    accelerator = Accelerator(graph, count_events, family, primitives)  # refuses what it cannot build, first
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{TOP_NAME}.v"
    library = ModuleLibrary(TOP_NAME)
    top = rtlil.convert(accelerator, name=TOP_NAME, platform=library, emit_src=False)
    # Amaranth's own step from RTLIL to Verilog (what verilog.convert does), for the top and its shared modules
    path.write_text(verilog._convert_rtlil_text("\n".join([top, *library.texts])))
    shutil.copyfile(WAIVERS, directory / WAIVERS.name)
    weights = accelerator.weight_bytes()
    (directory / WEIGHTS_FILE).unlink(missing_ok=True)
    if weights:
        (directory / WEIGHTS_FILE).write_bytes(weights)
    return path


def weights_file(verilog: Path) -> Path | None:
    """The bytes the design beside `verilog` loads through its weight stream (None when it has no such port)."""
    path = verilog.parent / WEIGHTS_FILE
    return path if path.is_file() else None


def current_verilog(graph: QGraph, build_dir: Path, family: str | None = None) -> Path:
    """The build dir's Verilog (DIR/rtl/undense_top.v, event counters included) for `family`, written if missing
    or older than the build dir's manifest."""
    verilog = build_dir / "rtl" / f"{TOP_NAME}.v"
    manifest = build_dir / "manifest.json"
    stale = manifest.is_file() and verilog.is_file() and manifest.stat().st_mtime > verilog.stat().st_mtime
    if not verilog.is_file() or stale:
        emit_verilog(graph, verilog.parent, family=family)
    return verilog


def instances(verilog: str, top: str = TOP_NAME) -> Iterator[tuple[str, str]]:
    """(path, module text) of every instance in the design, depth first: the top as "", then "fc1", "fc1.pe0",
    ... (a module shared by several instances once for each)."""
    modules = {match.group(1): match.group(0) for match in MODULE.finditer(verilog)}

    def walk(path: str, module: str):
        yield path, modules[module]
        for kind, name in INSTANCE.findall(modules[module]):
            if kind in modules:
                yield from walk(f"{path}.{name}" if path else name, kind)

    yield from walk("", top)
