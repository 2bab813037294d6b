"""What a folded layer costs in an FPGA before synthesis: LUT, FF, DSP and block RAM, per layer.

The memories are the ones the unit's description lists (hw/dense_unit.py), and the hardware marks each with
the placement chosen here (`memory_style`, decided once: `placement`), so Yosys puts it where this estimate
says: DSP and block-RAM counts are exact, not guessed. LUTs and FFs of a unit's logic come from its
description (hw/dense_unit.py, hw/add_unit.py), calibrated against Yosys on the bundled model; what a memory
costs beyond its blocks (read multiplexers, flip-flops) from where this family places it.
"""
from dataclasses import dataclass
from math import ceil

import numpy as np

from undense.compiler import activity
from undense.compiler.ir import QAdd, QDense, QGraph, SparseRows
from undense.compiler.numbers import MULTIPLIER_BITS, index_bits
from undense.hw import add_unit, conv_unit, dense_unit

# Block RAM shapes (depth, width) with one write and one read port: ECP5 DP16KD, iCE40 SB_RAM40_4K.
BRAM_SHAPES = {
    "ecp5": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ice40": ((2048, 2), (1024, 4), (512, 8), (256, 16)),
}
# The widest operands one DSP multiplies, signed: ECP5 MULT18X18D, iCE40 SB_MAC16.
DSP_WIDTH = {"ecp5": 18, "ice40": 16}
# The iCE40 UP5K's single-port RAM, SB_SPRAM256KA: 16K words of 16 bits, four of them beside 30 EBRs. It
# cannot be initialised from the bitstream, so weights placed there are loaded at run time (hw/weight_loader.py).
SPRAM_SHAPE = {"ice40": (16384, 16)}
SPRAM_MIN_BLOCKS = 4  # a weight memory that would take this many EBRs or more goes to SPRAM instead
# synth_ice40 leaves a product narrower than this to logic (mul2dsp's DSP_Y_MINWIDTH); synth_ecp5 takes any
DSP_MIN_PRODUCT = {"ecp5": 0, "ice40": 11}
DISTRIBUTED_MAX_DEPTH = 64  # ECP5 RAMs this shallow go to LUT RAM, deeper ones (and every ROM) to block RAM
LOGIC_MAX_BITS = 256        # iCE40 (no LUT RAM) memories this small go to flip-flops
OUTPUT_FIFO_DEPTH = dense_unit.OUTPUT_FIFO_DEPTH
LOADER_LUTS, LOADER_FFS = 16, 12  # each run-time-loaded memory's share of the weight loader (hw/weight_loader.py)


def memory_style(depth: int, width: int, family: str, rom: bool, weights: bool = False) -> str:
    """Where a memory goes, as Yosys's ram_style attribute says it: "block", "distributed", "logic", or
    "huge" (SPRAM: only for a PE's weights, the one memory the accelerator can load at run time)."""
    if weights and family in SPRAM_SHAPE and bram_blocks(depth, width, family) >= SPRAM_MIN_BLOCKS:
        return "huge"
    if family == "ecp5":
        if depth > DISTRIBUTED_MAX_DEPTH:
            return "block"
        return "logic" if rom else "distributed"
    return "block" if depth * width > LOGIC_MAX_BITS else "logic"


LUT_SLICE_BITS = 4  # a top slice this narrow is multiplied in logic (a few shifted adds), not in a DSP


def requantizer_dsps(acc_bits: int, family: str | None) -> int:
    """DSPs of a requantizer: one per slice of the sum, but a narrow top slice is done in logic."""
    width = product_slice_bits(family)
    slices, top = ceil(acc_bits / width), acc_bits - (ceil(acc_bits / width) - 1) * width
    return slices - (slices > 1 and top <= LUT_SLICE_BITS)


def product_slice_bits(family: str | None) -> int:
    """The requantizer multiplies the sum in slices this wide, each with the 16-bit multiplier in one DSP
    (a slice is unsigned but the top one, so one bit narrower than the DSP; ECP5's when no family is given)."""
    return DSP_WIDTH.get(family, DSP_WIDTH["ecp5"]) - 1


def loaded_at_run_time(style: str | None) -> bool:
    """Memories in SPRAM start empty: the accelerator loads them through its weight port."""
    return style == "huge"


def yosys_attrs(style: str | None) -> dict[str, str]:
    """The attributes that pin a memory to its placement (none: Yosys decides, as in simulation)."""
    return {} if style is None else {"ram_style": style, "rom_style": style}


def registered_reads(placement) -> bool:
    """Whether a layer's PEs register their banks' reads (hw/pe.py): its accumulators are in block RAM, given
    (memory name, style) pairs."""
    return any(style == "block" for name, style in placement if ".logic.acc" in name)


def block_slice_bits(depth: int, width: int, family: str) -> int:
    """The width to split an ECP5 memory of `depth` x `width` into, each slice one block RAM at its widest for
    that depth (0: it fits one as it is, or another family). A memory split by depth would select between RAMs
    placed apart before its output register (hw/pe.py's accumulator banks)."""
    if family != "ecp5":
        return 0
    widest = max(w for d, w in BRAM_SHAPES[family] if d >= depth) if depth <= BRAM_SHAPES[family][0][0] else 0
    return widest if 0 < widest < width else 0


def bram_blocks(depth: int, width: int, family: str) -> int:
    return min(ceil(depth / d) * ceil(width / w) for d, w in BRAM_SHAPES[family])


def spram_blocks(depth: int, width: int, family: str) -> int:
    spram_depth, spram_width = SPRAM_SHAPE[family]
    return ceil(depth / spram_depth) * ceil(width / spram_width)


def dsp_blocks(a_bits: int, b_bits: int, family: str) -> int:
    """DSP blocks for a product of signed a_bits and b_bits operands, tiled as Yosys's mul2dsp does: the
    magnitude bits in tiles of the DSP's width (measured: a 21 x 17-bit product takes two on both families)."""
    if a_bits + b_bits < DSP_MIN_PRODUCT[family]:
        return 0  # multiplied in logic
    width = DSP_WIDTH[family]
    return ceil((a_bits - 1) / width) * ceil((b_bits - 1) / width)


@dataclass(frozen=True)
class MemoryUse:
    name: str    # as in the Verilog: fc2.pe3.weights
    depth: int
    width: int
    style: str
    blocks: int  # block RAMs (0 unless style is "block")
    spram: int = 0  # SPRAMs (0 unless style is "huge")
    rom: bool = False


@dataclass(frozen=True)
class LayerCost:
    name: str
    lut: int
    ff: int
    dsp: int
    bram: int
    memories: tuple[MemoryUse, ...]

    @property
    def spram(self) -> int:
        return sum(use.spram for use in self.memories)

    def as_json(self) -> dict:
        return {"name": self.name, **{resource: getattr(self, resource) for resource in RESOURCES}}


def memory(name: str, depth: int, width: int, family: str, rom: bool = False, weights: bool = False,
           style: str | None = None, stored: int | None = None) -> MemoryUse:
    """A memory placed; of a ROM whose words share constant bits, synthesis stores only the `stored` others."""
    style = style or memory_style(depth, width, family, rom, weights)
    kept = width if stored is None else stored
    return MemoryUse(name, depth, width, style, bram_blocks(depth, kept, family) if style == "block" else 0,
                     spram_blocks(depth, kept, family) if style == "huge" else 0, rom)


def event_queue_depth(family: str | None) -> int:
    """Each PE's queue of input events (ECP5's when no family is given: simulation only)."""
    return dense_unit.EVENT_FIFO_DEPTH.get(family, dense_unit.EVENT_FIFO_DEPTH["ecp5"])


def requant_shift_bits(node: QDense) -> int:
    """Bits of a row's stored shift: how far the layer's shifts spread beyond its smallest."""
    return 1 if node.multiplier is None else index_bits(int(np.max(node.shift) - np.min(node.shift)) + 1)


def requant_shift_base(node: QDense) -> int:
    """The part of every row's shift the layer shares (less one): a constant shift, free in wiring."""
    return 0 if node.multiplier is None else max(int(np.min(node.shift)) - 1, 0)


def code_bits(graph: QGraph, tensor: str, acc_bits: int = 0) -> int:
    params = graph.quant[tensor]
    return acc_bits if params is None else params.bits


def value_bits(graph: QGraph, tensor: str, acc_bits: int = 0) -> int:
    """Bits of an event's value on `tensor`'s edge: its codes less the edge's offset."""
    params = graph.quant[tensor]
    if params is None:
        return acc_bits
    offset = graph.edges[tensor].offset if tensor in graph.edges else 0
    low, high = params.qmin - offset, params.qmax - offset
    return max(high.bit_length() + (low < 0), (-low - 1).bit_length() + 1 if low < 0 else 0, 1)


def row_bits(node: QDense) -> int:
    """A row's requantization constants (hw/requantizer.RequantParams.row_layout)."""
    return node.acc_bits + MULTIPLIER_BITS + 1 + requant_shift_bits(node)


def row_constants(graph: QGraph, node: QDense) -> list[tuple[int, int, int]]:
    """Every row's (bias, multiplier, stored shift) as the unit stores them: the bias as the unit adds it, of the
    shift only what differs from the layer's common part (stored_shift)."""
    offset = graph.edges[node.input].offset if node.input in graph.edges else 0
    sums = node.weight.csr().sum(axis=1) if isinstance(node.weight, SparseRows) else node.weight.sum(axis=1)
    bias = dense_unit.hardware_bias(node.bias, np.asarray(sums).reshape(-1), offset, node.acc_bits)
    if node.multiplier is None:
        return [(int(b), 0, 0) for b in bias]
    base = requant_shift_base(node)
    return [(int(b), int(m), stored_shift(int(s), base)) for b, m, s in zip(bias, node.multiplier, node.shift,
                                                                           strict=True)]


def row_repeat(graph: QGraph, node: QDense) -> int:
    """Rows in a row that share their constants, stored once: a convolution's channel (its H x W positions) where
    the bias is the same at every position (it differs at the border where the input's zero point is folded into
    it); 1 elsewhere."""
    if not conv_unit.scatters(node):
        return 1
    _, height, width = node.geometry.out_shape
    constants = np.array(row_constants(graph, node)).reshape(-1, height * width, 3)
    if not np.all(constants == constants[:, :1]):
        return 1
    return width if activity.conv_flow(graph, node).rows_out else height * width  # a channel's row, or its map


def stored_shift(shift: int, base: int) -> int:
    """Of a row's shift s only s - 1 - base is stored: rshift_round shifts right by s - 1 first, and the layer's
    common part `base` (requant_shift_base) is a constant shift."""
    return max(shift - 1 - base, 0)


def dense_memories(graph: QGraph, node: QDense, lanes: int, groups: int, family: str) -> list[MemoryUse]:
    """Every memory of the layer's unit, as its description lists them (hw/dense_unit.py), placed. A PE's column
    table is read in the cycle it is addressed, so it is always logic."""
    table_bits = code_bits(graph, node.output, node.acc_bits)
    out = graph.edges[node.output]
    rows = dense_unit.row_words(row_constants(graph, node), groups, node.acc_bits, MULTIPLIER_BITS + 1, out.block,
                                row_repeat(graph, node), out.row_width)
    table_entries = 0 if node.table is None else len(node.table)
    in_bits, out_bits = value_bits(graph, node.input), value_bits(graph, node.output, node.acc_bits)
    if node.is_convolution:
        listed = conv_unit.memories(node.geometry, conv_unit.scatter_taps(node.geometry, node.kernel), lanes, groups,
                                    activity.conv_flow(graph, node), out.block, node.weight_bits, in_bits,
                                    node.acc_bits, row_bits(node), rows, out_bits, table_entries, table_bits,
                                    event_queue_depth(family))
    else:
        listed = dense_unit.memories(node.dense_codes(), lanes, groups, node.weight_bits, in_bits, node.acc_bits,
                                     row_bits(node), rows, out_bits, table_entries, table_bits,
                                     event_queue_depth(family))
    return [memory(f"{node.name}.{use.name}", use.depth, use.width, family, use.rom, use.weights,
                   "logic" if use.name.endswith(".columns") else None, use.stored) for use in listed]


def placement(graph: QGraph, node: QDense, family: str) -> dict[str, str]:
    """Where each memory of the layer's unit goes, by its name within the unit (pe3.weights, g0.rows, ...)."""
    return {use.name.removeprefix(f"{node.name}."): use.style
            for use in dense_memories(graph, node, node.fold.lanes, node.fold.groups, family)}


def read_mux_luts(use: MemoryUse) -> int:
    """LUT4s that select a word of a memory built from 16-deep LUT RAMs, from LUTs (a ROM) or from flip-flops:
    there, about one a stored bit, with the write enables (measured on iCE40 FIFOs of 4 to 32 words: 35 to 292
    LUTs)."""
    if use.style == "logic":
        return use.width * max(1, ceil(use.depth / 8)) if use.rom else use.width * (use.depth - 1)
    return use.width * max(0, ceil(use.depth / 16) - 1) if use.style == "distributed" else 0


def dense_cost(graph: QGraph, node: QDense, lanes: int, groups: int, family: str) -> LayerCost:
    """The layer's unit (hw/event_dense.py) on a grid of lanes x groups PEs: its logic as its description counts
    it (hw/dense_unit.py), its memories placed for the family, and what they cost beyond their blocks: read
    multiplexers, flip-flops (iCE40's small RAMs), a share of the weight loader."""
    memories = dense_memories(graph, node, lanes, groups, family)
    in_bits = value_bits(graph, node.input)
    out_bits = value_bits(graph, node.output, node.acc_bits)
    lut, ff = dense_unit.logic_cost(memories, lanes, groups, node.in_features, node.out_features, in_bits, out_bits,
                                    node.weight_bits, node.acc_bits, row_bits(node), event_queue_depth(family))
    if node.is_convolution:
        shape = conv_unit.spatial(node.geometry, conv_unit.scatter_taps(node.geometry, node.kernel), groups,
                                  activity.conv_flow(graph, node))
        extra = conv_unit.logic_cost(shape, lanes, lanes * groups, node.geometry.in_shape[0], in_bits,
                                     node.out_features, node.acc_bits)
        lut, ff = lut + extra[0], ff + extra[1]
    if registered_reads((use.name, use.style) for use in memories):
        ff += lanes * groups * (3 * node.acc_bits + index_bits(node.out_features) + 4)
        lut += lanes * groups * (node.acc_bits + index_bits(node.out_features))  # the third forward
    if any(use.style == "block" for use in memories if use.name.endswith("requantizer.table")):
        ff += groups * (out_bits + 1)
    raw = node.multiplier is None
    if not raw:
        per_lut, per_ff = dense_unit.requantizer_cost(node.acc_bits, row_bits(node), out_bits, requant_shift_bits(node),
                                                      requant_shift_base(node), product_slice_bits(family),
                                                      LUT_SLICE_BITS)
        lut, ff = lut + groups * per_lut, ff + groups * per_ff
    for use in memories:
        lut += read_mux_luts(use)
        if loaded_at_run_time(use.style):  # the address shared by loading and reading; a share of the loader
            lut += index_bits(use.depth) + LOADER_LUTS
            ff += LOADER_FFS
        if use.style == "logic" and not use.rom:
            ff += use.depth * use.width
    pe = lanes * groups
    dsp = pe * dsp_blocks(node.weight_bits, in_bits, family)
    if dsp == 0:  # the MACs' multipliers are in logic
        lut += pe * node.weight_bits * in_bits
    if not raw:
        dsp += groups * requantizer_dsps(node.acc_bits, family)
    return LayerCost(node.name, int(lut), int(ff), dsp, sum(use.blocks for use in memories), tuple(memories))


def skip_fifo_depth(layers_skipped: int, features: int) -> int:
    """Events a lane of a skip connection must hold while the long path works (`features`: positions per lane):
    every layer it skips can hold about five images (its PEs' queues, the bank they fill, the bank it drains,
    its output queues) and the queues themselves."""
    return layers_skipped * (5 * features + OUTPUT_FIFO_DEPTH + max(dense_unit.EVENT_FIFO_DEPTH.values())) + 2


def layer_depths(graph: QGraph) -> dict[str, int]:
    """Dense layers on the longest path from the input to each tensor."""
    depth = {graph.input: 0}
    for node in graph.nodes:
        depth[node.output] = depth[node.input] + 1 if isinstance(node, QDense) else max(depth[t] for t in node.inputs)
    return depth


def skip_fifos(graph: QGraph, node: QAdd) -> dict[str, int]:
    """The Add's inputs that arrive by a shorter path, with the FIFO depth each needs (hw/top.py builds them)."""
    depth = layer_depths(graph)
    longest = max(depth[tensor] for tensor in node.inputs)
    lanes = graph.edges[node.output].lanes if node.output in graph.edges else 1
    return {tensor: skip_fifo_depth(longest - depth[tensor], dense_unit.lane_positions(node.features, lanes))
            for tensor in node.inputs if depth[tensor] < longest}


def add_cost(graph: QGraph, node: QAdd, family: str, lanes: int = 1) -> LayerCost:
    """An elementwise Add (hw/elementwise.py): its logic as its description counts it (hw/add_unit.py), its two
    rescaling multipliers per lane, and the FIFO on its shorter input."""
    bits = [value_bits(graph, name) for name in node.inputs]
    positions = dense_unit.lane_positions(node.features, lanes)
    dsp = lanes * sum(dsp_blocks(b + 1, MULTIPLIER_BITS + 2, family) for b in bits)
    memories = tuple(memory(f"{node.name}_skip{lane}.storage", depth - 1,
                            value_bits(graph, tensor) + index_bits(positions) + 1, family)
                     for tensor, depth in skip_fifos(graph, node).items() for lane in range(lanes))
    lut, ff = add_unit.logic_cost(lanes, positions, bits, node.requant.bits, node.shift)
    lut += sum(read_mux_luts(use) + 30 for use in memories)
    ff += sum(use.width + 3 * index_bits(use.depth) + (use.style == "logic") * use.depth * use.width
              for use in memories)
    return LayerCost(node.name, lut=lut, ff=ff, dsp=dsp, bram=sum(use.blocks for use in memories), memories=memories)


def layer_cost(graph: QGraph, node: QDense | QAdd, family: str, lanes: int | None = None,
               groups: int | None = None) -> LayerCost:
    """What a layer costs as folded, or on a grid of `lanes` x `groups` PEs; nothing for a convolution the
    hardware has no unit for (hw/top.py refuses to build it), so that the rest of the model is still folded."""
    if isinstance(node, QDense) and node.is_convolution and not conv_unit.scatters(node):
        return LayerCost(node.name, 0, 0, 0, 0, ())
    if isinstance(node, QAdd):
        return add_cost(graph, node, family, lanes or node.fold.lanes)
    if lanes is None:
        lanes, groups = node.fold.lanes, node.fold.groups
    return dense_cost(graph, node, lanes, groups, family)


RESOURCES = ("lut", "ff", "dsp", "bram", "spram")


def total(costs: list[LayerCost]) -> dict[str, int]:
    return {resource: sum(getattr(cost, resource) for cost in costs) for resource in RESOURCES}


def design_cost(graph: QGraph, family: str) -> dict[str, int]:
    """The folded graph's estimate, summed over its layers."""
    return total([layer_cost(graph, node, family) for node in graph.nodes])
