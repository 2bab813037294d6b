"""Energy per image on the FPGA, from what the simulation counted and where the hardware put things.

    energy per image = static power x time per image
                     + sum over events (per image) of count x energy of that event where it happened
                     + clock tree: cycles per image x (flip-flops x energy per flip-flop clocked
                                                     + DSP and RAM blocks x energy per block clocked)

The counts come from sim.json (checked against golden's prediction there), the placement of every memory from
compile.json (block RAM, SPRAM, LUT RAM or flip-flops: a read costs what the resource it sits in costs), the
number of flip-flops and blocks from synth.json when there is one, else from the compiler's estimate. Every
coefficient is in data/energy.json with its source, its voltage and how it was derived.

The physical floor prices the same MACs and memory accesses at Horowitz's 45 nm ASIC energies (ISSCC 2014),
with no static power and no clock: how far the FPGA is from the limit.
"""
import json
import re
from functools import cache
from math import ceil
from pathlib import Path

from undense.compiler.numbers import index_bits
from undense.compiler.resources import DSP_WIDTH, dsp_blocks, requantizer_dsps

DATA = Path(__file__).parent / "data" / "energy.json"
PICO = 1e-12
# The read and write port width of one RAM block as the hardware uses it (compiler/resources.BRAM_SHAPES)
BLOCK_PORT_BITS = {"ecp5": 18, "ice40": 16}
SPRAM_PORT_BITS = 16
# What a memory event of sim.json touches: (memory of the layer, read or write)
MEMORY_EVENTS = {"weight_reads": ("weights", "read"), "input_buffer_writes": ("inputs", "write"),
                 "input_buffer_reads": ("inputs", "read"), "output_buffer_writes": ("outputs", "write"),
                 "output_buffer_reads": ("outputs", "read"), "table_reads": ("requantizer.table", "read")}
# How the breakdown groups the events
GROUPS = {"macs": "MACs", "pipeline": "register activity", "weight_reads": "weight reads",
          "input_buffer_writes": "buffer writes",
          "output_buffer_writes": "buffer writes", "input_buffer_reads": "buffer reads",
          "output_buffer_reads": "buffer reads", "table_reads": "table reads", "requantize": "requantizer",
          "stream_in": "streams", "stream_out": "streams", "adds": "adds"}


@cache
def coefficients() -> dict:
    return json.loads(DATA.read_text())


def value(entry: dict) -> float:
    return float(entry["value"])


def memory_access_pj(placement: str, width: int, kind: str, family: str, table: dict) -> float:
    """One read or write of a `width`-bit word of a memory placed as the compiler placed it."""
    if placement == "block":
        return ceil(width / BLOCK_PORT_BITS[family]) * value(table[f"bram_{kind}_pj"])
    if placement == "huge":
        return ceil(width / SPRAM_PORT_BITS) * value(table[f"spram_{kind}_pj"])
    if placement == "distributed":
        return width * value(table[f"lutram_{kind}_pj_per_bit"])
    return width * value(table["logic_pj_per_bit"])  # flip-flops and their multiplexers


def layer_memories(layer: dict) -> dict[str, list[dict]]:
    """The layer's memories by role (weights, inputs, outputs, requantizer.table), one entry per PE."""
    roles: dict[str, list[dict]] = {}
    for memory in layer.get("memories", []):
        role = re.sub(r"^pe\d+\.", "", memory["name"].removeprefix(layer["name"] + "."))
        roles.setdefault(role, []).append(memory)
    return roles


def event_pj(event: str, layer: dict, family: str, table: dict) -> float:
    """The energy of one event of the layer, in pJ."""
    if event in MEMORY_EVENTS:
        role, kind = MEMORY_EVENTS[event]
        memories = layer_memories(layer)[role]
        return sum(memory_access_pj(m["placement"], m["width"], kind, family, table) for m in memories) / len(memories)
    logic = value(table["logic_pj_per_bit"])
    if event == "macs":  # the product, then the accumulator's add and register
        return multiply_pj(layer["weight_bits"], layer["input_bits"] + 1, family, table) + layer["acc_bits"] * logic
    if event == "pipeline":  # a weight entry's trip through the PE's registers: entry, value, input, product
        column = index_bits(layer["shape"][1])
        bits = (layer["weight_bits"] + column + 1) + (layer["weight_bits"] + 1) + layer["input_bits"] + (
            layer["weight_bits"] + layer["input_bits"] + 1)
        return bits * value(table["toggle_rate"]) * logic
    if event == "requantize":  # the sum times the row's 16-bit multiplier, in DSP-sized slices
        return value(table["dsp_multiply_pj"]) * max(1, requantizer_dsps(layer["acc_bits"], family))
    bits = {"stream_in": layer["input_bits"], "stream_out": layer["act_bits"], "adds": layer["act_bits"] + 1}[event]
    return bits * logic  # a register and its routing per bit


def multiply_pj(a_bits: int, b_bits: int, family: str, table: dict) -> float:
    """A product in a DSP, priced by the share of the DSP's partial-product array its operands use; in logic
    (iCE40 leaves small products there) a bit of logic per partial product."""
    if dsp_blocks(a_bits, b_bits, family) == 0:
        return a_bits * b_bits * value(table["logic_pj_per_bit"])
    width = DSP_WIDTH[family]
    return value(table["dsp_multiply_pj"]) * dsp_blocks(a_bits, b_bits, family) * min(1.0, a_bits * b_bits / width**2)


def layer_events(layer: dict, counts: dict[str, int]) -> dict[str, int]:
    """sim.json's events of a layer, plus the requantizer's work: one multiply for every value it streams out."""
    events = dict(counts)
    if layer["op"] == "dense":
        events["pipeline"] = counts.get("weight_reads", 0)
        if layer["act_bits"] != layer["acc_bits"]:  # not a raw accumulator output
            events["requantize"] = counts.get("output_buffer_reads", 0)
    return events


def fpga_energy(compile_report: dict, sim_report: dict, resources: dict, target) -> dict:
    """Energy per image on `target` (compiler.targets.Target) at its clock, with the breakdowns."""
    family = target.family
    table = coefficients()["families"][family]["coefficients"]
    images = sim_report["images"]
    seconds = sim_report["cycles_per_image"] / (target.clock_mhz * 1e6)
    by_event: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    for layer in compile_report["layers"]:
        counts = layer_events(layer, sim_report["events"].get(layer["name"], {}))
        for event, count in counts.items():
            if not count:
                continue
            joules = count / images * event_pj(event, layer, family, table) * PICO
            group = GROUPS[event]
            by_event[group] = by_event.get(group, 0.0) + joules
            by_layer[layer["name"]] = by_layer.get(layer["name"], 0.0) + joules
    blocks = resources.get("dsp", 0) + resources.get("bram", 0) + resources.get("spram", 0)
    by_event["clock tree"] = sim_report["cycles_per_image"] * PICO * (
        resources["ff"] * value(table["clock_pj_per_ff_cycle"]) + blocks * value(table["clock_pj_per_block_cycle"]))
    static = coefficients()["static_w"][target.name]
    by_event["static"] = value(static) * seconds
    total = sum(by_event.values())
    return {
        "target": target.name, "device": target.device, "clock_mhz": target.clock_mhz,
        "cycles_per_image": sim_report["cycles_per_image"], "seconds_per_image": seconds,
        "j_per_image": total, "average_power_w": total / seconds, "images_per_second": 1 / seconds,
        "images_per_joule": 1 / total, "breakdown_j": dict(sorted(by_event.items(), key=lambda item: -item[1])),
        "by_layer_dynamic_j": by_layer,
        "resources": {key: resources.get(key, 0) for key in ("ff", "dsp", "bram", "spram")},
        "coefficients": {"family": family, **table, "static_w": static},
    }


def asic_floor(compile_report: dict, sim_report: dict) -> dict:
    """The same MACs and memory accesses at 45 nm ASIC energies: multiply and accumulate at the layer's widths,
    each memory access as a read of an 8 KB SRAM scaled to its width. No static power, no clock."""
    floor = coefficients()["asic_floor"]
    images = sim_report["images"]
    by_event: dict[str, float] = {}
    for layer in compile_report["layers"]:
        counts = sim_report["events"].get(layer["name"], {})
        acc_bits = layer["acc_bits"] or layer["act_bits"]
        for event, count in counts.items():
            if not count:
                continue
            if event == "macs":
                pj = (value(floor["mult_8bit_pj"]) * layer["weight_bits"] * layer["input_bits"] / 64
                      + value(floor["add_32bit_pj"]) * acc_bits / 32)
            elif event in MEMORY_EVENTS:
                memories = layer_memories(layer)[MEMORY_EVENTS[event][0]]
                pj = value(floor["sram_8kb_read_64bit_pj"]) * memories[0]["width"] / 64
            else:
                continue
            by_event[GROUPS[event]] = by_event.get(GROUPS[event], 0.0) + count / images * pj * PICO
    return {"j_per_image": sum(by_event.values()), "breakdown_j": by_event, "source": floor["source"]}
