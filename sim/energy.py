"""Energy per image on the FPGA, from what the simulation counted and where the hardware put things.

    energy per image = static power x time per image
                     + sum over events (per image) of count x energy of that event where it happened
                     + clock tree: cycles per image x (the clock network's cost per cycle
                                                     + flip-flops x energy per flip-flop clocked
                                                     + DSP and RAM blocks x energy per block clocked)

Two figures: streaming (`fpga_energy`: the steady-state cycles per image, images following each other through
the pipeline) and one image alone (`one_image_energy`: static power and clock over the first image's latency,
plus that image's events), the like-for-like figure against a GPU at batch 1.

The counts come from sim.json (checked against golden's prediction there), the placement of every memory from
compile.json (block RAM, SPRAM, LUT RAM or flip-flops: a read costs what the resource it sits in costs), the
number of flip-flops and blocks from synth.json when there is one, else from the compiler's estimate. Every
coefficient is in data/energy.json with its source, how it was derived, and a low and a high end; each figure
comes as the typical value and as a range, every coefficient at its low end together and at its high end
together. Static power is the sum over the device's supply rails (core and auxiliary) of voltage x current.

The physical floor prices the same MACs and memory accesses at Horowitz's 45 nm ASIC energies (ISSCC 2014),
with no static power and no clock: how far the FPGA is from the limit.
"""
import json
from functools import cache
from math import ceil
from pathlib import Path

from undense.compiler.numbers import index_bits
from undense.compiler.resources import DSP_WIDTH, dsp_blocks, requantizer_dsps
from undense.compiler.targets import Target, by_size, targets
from undense.hw import add_unit, conv_unit, dense_unit

DATA = Path(__file__).parent / "data" / "energy.json"
PICO = 1e-12
MILLI = 1e-3
ENDS = ("low", "value", "high")  # a coefficient's low end, its typical value, its high end
RANGE_KEYS = {"low": "low", "value": "typical", "high": "high"}  # how a figure's range names them
# The read and write port width of one RAM block as the hardware uses it (compiler/resources.BRAM_SHAPES)
BLOCK_PORT_BITS = {"ecp5": 18, "ice40": 16}
SPRAM_PORT_BITS = 16
# What each event of sim.json touches in its unit's memories, from the units' descriptions, by layer op (a
# channelwise layer is a Dense unit's diagonal; the other convolutions scatter on the convolution unit)
ACCESSES = {"dense": dense_unit.EVENTS, "channelwise": dense_unit.EVENTS, "add": add_unit.EVENTS,
            **{op: conv_unit.EVENTS for op in ("conv", "conv_transpose", "upsample_conv", "upsample")}}
# How the breakdown groups the events
GROUPS = {"macs": "MACs", "pipeline": "register activity", "weight_reads": "weight reads",
          "event_reads": "event queues", "acc_updates": "accumulators", "drain_reads": "accumulators",
          "table_reads": "table reads", "requantized": "requantizer", "stream_in": "streams",
          "stream_out": "streams", "adds": "adds"}


@cache
def coefficients() -> dict:
    return json.loads(DATA.read_text())


def value(entry: dict, end: str = "value") -> float:
    return float(entry[end])


def at_end(table: dict, end: str) -> dict:
    """The coefficients with each one's `value` set to the given end of its range."""
    return {name: {**entry, "value": entry[end]} for name, entry in table.items()}


def static_w(target_name: str, end: str = "value") -> float:
    """The device's static power: voltage x standby current, summed over its supply rails (core, auxiliary)."""
    rails = coefficients()["targets"][target_name]["static_rails"]
    return sum(rail["voltage_v"] * value(rail["current_ma"], end) * MILLI for rail in rails.values())


def static_entry(target_name: str) -> dict:
    """Static power as the report lists a coefficient: typical value, range, source, and its rails."""
    rails = coefficients()["targets"][target_name]["static_rails"]
    return {**{end: static_w(target_name, end) for end in ENDS},
            "source": "; ".join(f"{name}: {rail['current_ma']['source']}" for name, rail in rails.items()),
            "derivation": " + ".join(f"{rail['voltage_v']:g} V x {rail['current_ma']['value']:g} mA ({name})"
                                     for name, rail in rails.items()),
            "rails": rails}


def clock_pj_per_cycle(target_name: str, resources: dict, table: dict, end: str = "value") -> float:
    """The clock tree's energy per cycle: the network itself, then every flip-flop and block it clocks; `table`
    is the family's coefficients already at `end` (at_end), the network's figure is the target's own."""
    blocks = resources.get("dsp", 0) + resources.get("bram", 0) + resources.get("spram", 0)
    return (value(coefficients()["targets"][target_name]["clock_pj_per_cycle"], end)
            + resources.get("ff", 0) * value(table["clock_pj_per_ff_cycle"])
            + blocks * value(table["clock_pj_per_block_cycle"]))


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
    """The layer's memories by role (weights, acc, requantizer.table, ...), one entry per PE or group."""
    roles: dict[str, list[dict]] = {}
    for memory in layer.get("memories", []):
        roles.setdefault(dense_unit.role(memory["name"].removeprefix(layer["name"] + ".")), []).append(memory)
    return roles


def access_pj(role: str, kind: str, layer: dict, family: str, table: dict) -> float:
    """One read or write of the layer's memories of a role, on average over its PEs or groups."""
    memories = layer_memories(layer)[role]
    return sum(memory_access_pj(m["placement"], m["width"], kind, family, table) for m in memories) / len(memories)


def event_pj(event: str, layer: dict, family: str, table: dict) -> float:
    """The energy of one event of the layer, in pJ."""
    logic = value(table["logic_pj_per_bit"])
    touched = ACCESSES[layer["op"]].get(event, ())
    memory_pj = sum(access_pj(role, kind, layer, family, table) for role, kind in touched)
    if event == "acc_updates":  # the read, the add and the write
        return memory_pj + layer["acc_bits"] * logic
    if event == "requantized":  # the sum times the row's 16-bit multiplier, in DSP-sized slices
        return memory_pj + value(table["dsp_multiply_pj"]) * max(1, requantizer_dsps(layer["acc_bits"], family))
    if touched:
        return memory_pj
    if event == "macs":  # the product
        return multiply_pj(layer["weight_bits"], layer["input_bits"] + 1, family, table)
    if event == "pipeline":  # a weight entry's trip through the PE's registers
        bits = dense_unit.pipeline_bits(layer["weight_bits"], layer["input_bits"] + 1, layer["acc_bits"],
                                        index_bits(dense_unit.lane_positions(layer["shape"][0], layer["groups"])))
        return bits * value(table["toggle_rate"]) * logic
    bits = {"stream_in": layer["input_bits"], "stream_out": layer["act_bits"], "adds": layer["act_bits"] + 1}[event]
    return bits * logic  # a register and its routing per bit


def multiply_pj(a_bits: int, b_bits: int, family: str, table: dict) -> float:
    """A product in a DSP, priced by the share of the DSP's partial-product array its operands use; in logic
    (iCE40 leaves small products there) its partial products."""
    if dsp_blocks(a_bits, b_bits, family) == 0:
        return logic_multiply_pj(a_bits, b_bits, table)
    width = DSP_WIDTH[family]
    return value(table["dsp_multiply_pj"]) * dsp_blocks(a_bits, b_bits, family) * min(1.0, a_bits * b_bits / width**2)


def logic_multiply_pj(a_bits: int, b_bits: int, table: dict) -> float:
    """A product built from LUTs, priced per partial product (measured on an iCE40: data/energy.json)."""
    return a_bits * b_bits * value(table["logic_multiply_pj_per_partial_product"])


def layer_events(layer: dict, counts: dict[str, int]) -> dict[str, int]:
    """sim.json's events of a layer, plus the requantizer's work: one multiply for every value it streams out."""
    events = dict(counts)
    if layer["op"] != "add":
        events["pipeline"] = counts.get("acc_updates", 0)  # an entry down a PE's pipeline
    return events


def dynamic_j(compile_report: dict, sim_report: dict, family: str, table: dict) -> tuple[dict, dict]:
    """Joules per image of every event the simulation counted, by event group and by layer."""
    images = sim_report["images"]
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
    return by_event, by_layer


def priced(compile_report: dict, sim_report: dict, resources: dict, target: Target, cycles: float,
           end: str = "value") -> tuple[dict, dict]:
    """The breakdown of one image's joules over `cycles` of the clock (by event group, static and clock tree
    included) and the dynamic joules by layer, every coefficient at `end` of its range."""
    table = at_end(coefficients()["families"][target.family]["coefficients"], end)
    by_event, by_layer = dynamic_j(compile_report, sim_report, target.family, table)
    by_event["clock tree"] = cycles * clock_pj_per_cycle(target.name, resources, table, end) * PICO
    by_event["static"] = static_w(target.name, end) * cycles / (target.clock_mhz * 1e6)
    return by_event, by_layer


def ranged(compile_report: dict, sim_report: dict, resources: dict, target: Target, cycles: float) -> dict:
    """One image over `cycles`: the typical breakdown (largest part first), its total and the dynamic joules by
    layer, and the total and breakdown with every coefficient at its low end and at its high end."""
    ends, by_layer = {}, {}
    for end in ENDS:
        ends[end], by_layer[end] = priced(compile_report, sim_report, resources, target, cycles, end)
    order = sorted(ends["value"], key=lambda part: -ends["value"][part])
    return {"j_per_image": sum(ends["value"].values()), "by_layer_dynamic_j": by_layer["value"],
            "j_per_image_range": {RANGE_KEYS[end]: sum(parts.values()) for end, parts in ends.items()},
            "breakdown_j": {part: ends["value"][part] for part in order},
            "breakdown_j_range": {RANGE_KEYS[end]: {part: ends[end][part] for part in order}
                                  for end in ("low", "high")}}


def fpga_energy(compile_report: dict, sim_report: dict, resources: dict, target: Target) -> dict:
    """Energy per image on `target` at its clock, streaming (sim.json's steady-state cycles per image), with its
    range, its breakdowns, and the same image alone (`one_image`, see one_image_energy)."""
    cycles = sim_report["cycles_per_image"]
    seconds = cycles / (target.clock_mhz * 1e6)
    streaming = ranged(compile_report, sim_report, resources, target, cycles)
    total = streaming["j_per_image"]
    table = coefficients()["families"][target.family]["coefficients"]
    return {
        "target": target.name, "device": target.device, "clock_mhz": target.clock_mhz,
        "cycles_per_image": cycles, "seconds_per_image": seconds,
        "j_per_image": total, "average_power_w": total / seconds, "images_per_second": 1 / seconds,
        "images_per_joule": 1 / total, "breakdown_j": streaming["breakdown_j"],
        "by_layer_dynamic_j": streaming["by_layer_dynamic_j"],
        "j_per_image_range": streaming["j_per_image_range"],
        "average_power_w_range": {key: joules / seconds for key, joules in streaming["j_per_image_range"].items()},
        "breakdown_j_range": streaming["breakdown_j_range"],
        "one_image": one_image_energy(compile_report, sim_report, resources, target),
        "resources": {key: resources.get(key, 0) for key in ("ff", "dsp", "bram", "spram")},
        "coefficients": {"family": target.family, **table, "static_w": static_entry(target.name),
                         "clock_pj_per_cycle": coefficients()["targets"][target.name]["clock_pj_per_cycle"]},
    }


def one_image_energy(compile_report: dict, sim_report: dict, resources: dict, target: Target) -> dict | None:
    """One image alone in the accelerator: static power and the clock over its latency (sim.json's
    first_image_latency_cycles, input in to last output out), plus that image's events. None for a sim.json
    without the latency."""
    cycles = sim_report.get("first_image_latency_cycles")
    if cycles is None:
        return None
    alone = ranged(compile_report, sim_report, resources, target, cycles)
    return {"cycles": cycles, "seconds": cycles / (target.clock_mhz * 1e6), **alone}


def across_parts(compile_report: dict, sim_report: dict, resources: dict, family: str | None = None) -> list[dict]:
    """The same design (same activity, same flip-flops and blocks) on every part of its family, smallest first:
    whether the compiler's estimate fits the part and, where it does, the energy per image there, streaming
    and one image alone, with the part's own static power and clock network."""
    compiled_for = targets()[compile_report["target"]]
    if family not in (None, compiled_for.family):
        raise ValueError(f"a design compiled for {compiled_for.family} cannot be priced on {family}: its memories "
                         "are placed for its own family")
    parts = []
    for part in by_size(compiled_for.family):
        short = [name for name, have in part.capacity().items() if compile_report["estimate"].get(name, 0) > have]
        entry = {"target": part.name, "device": part.device, "clock_mhz": part.clock_mhz,
                 "compiled_for": part.name == compiled_for.name, "fits": not short, "short": short,
                 "static_w": static_w(part.name), "j_per_image": None, "j_per_image_range": None,
                 "one_image_j": None, "one_image_j_range": None}
        if not short:
            figures = fpga_energy(compile_report, sim_report, resources, part)
            alone = figures["one_image"] or {}
            entry.update(j_per_image=figures["j_per_image"], j_per_image_range=figures["j_per_image_range"],
                         one_image_j=alone.get("j_per_image"), one_image_j_range=alone.get("j_per_image_range"))
        parts.append(entry)
    return parts


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
            elif ACCESSES[layer["op"]].get(event):
                pj = sum(value(floor["sram_8kb_read_64bit_pj"]) * layer_memories(layer)[role][0]["width"] / 64
                         for role, _ in ACCESSES[layer["op"]][event])
            else:
                continue
            by_event[GROUPS[event]] = by_event.get(GROUPS[event], 0.0) + count / images * pj * PICO
    return {"j_per_image": sum(by_event.values()), "breakdown_j": by_event, "source": floor["source"]}
