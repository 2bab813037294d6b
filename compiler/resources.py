"""What a folded layer costs in an FPGA before synthesis: LUT, FF, DSP and block RAM, per layer.

The memories are listed exactly as the hardware builds them (hw/pe.py, hw/sparse_mvau.py,
hw/requantizer.py), and the hardware marks each with the placement chosen here (`memory_style`), so Yosys
puts it where this estimate says: DSP and block-RAM counts are exact, not guessed. LUTs and FFs come from
a per-component model (see `logic`), calibrated against Yosys on the bundled model.
"""
from dataclasses import dataclass
from math import ceil

import numpy as np

from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.numbers import MULTIPLIER_BITS, index_bits

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
OUTPUT_FIFO_DEPTH = 16      # each layer's output FIFO, in values
LOADER_LUTS, LOADER_FFS = 16, 12  # each run-time-loaded memory's share of the weight loader (hw/weight_loader.py)


def memory_style(depth: int, width: int, family: str, rom: bool, weights: bool = False) -> str:
    """Where a memory goes, as Yosys's ram_style attribute says it: "block", "distributed", "logic", or
    "huge" (SPRAM: only for a PE's weights, the one memory the accelerator can load at run time)."""
    if weights and family in SPRAM_SHAPE and bram_blocks(depth, width, family) >= SPRAM_MIN_BLOCKS:
        return "huge"
    if family == "ecp5":
        return "block" if rom or depth > DISTRIBUTED_MAX_DEPTH else "distributed"
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


def memory(name: str, depth: int, width: int, family: str, rom: bool = False, weights: bool = False) -> MemoryUse:
    style = memory_style(depth, width, family, rom, weights)
    return MemoryUse(name, depth, width, style, bram_blocks(depth, width, family) if style == "block" else 0,
                     spram_blocks(depth, width, family) if style == "huge" else 0)


def requant_shift_bits(node: QDense) -> int:
    """Bits of a row's stored shift: how far the layer's shifts spread beyond its smallest."""
    return 1 if node.multiplier is None else index_bits(int(np.max(node.shift) - np.min(node.shift)) + 1)


def requant_shift_base(node: QDense) -> int:
    """The part of every row's shift the layer shares (less one): a constant shift, free in wiring."""
    return 0 if node.multiplier is None else max(int(np.min(node.shift)) - 1, 0)


def code_bits(graph: QGraph, tensor: str, acc_bits: int = 0) -> int:
    params = graph.quant[tensor]
    return acc_bits if params is None else params.bits


def dense_memories(graph: QGraph, node: QDense, pe_of_row: np.ndarray, pe: int, family: str) -> list[MemoryUse]:
    """Every memory of the layer's unit, as hw/ builds it."""
    in_features, load = node.weight.in_features, np.maximum(node.weight.row_nnz, 1)
    rows = np.bincount(pe_of_row, minlength=pe)
    entries = np.bincount(pe_of_row, weights=load, minlength=pe).astype(int)
    shift_bits = requant_shift_bits(node)
    out_bits = code_bits(graph, node.output, node.acc_bits)
    memories = []
    for element in range(pe):
        prefix = f"{node.name}.pe{element}"
        memories += [
            memory(f"{prefix}.weights", int(entries[element]), node.weight_bits + index_bits(in_features) + 1, family,
                   rom=True, weights=True),
            memory(f"{prefix}.inputs", 2 << index_bits(in_features), code_bits(graph, node.input), family),
            memory(f"{prefix}.outputs", 2 << index_bits(int(rows[element])), node.acc_bits, family),
        ]
    row_width = index_bits(pe) + index_bits(int(rows.max())) + node.acc_bits + MULTIPLIER_BITS + 1 + shift_bits
    memories.append(memory(f"{node.name}.rows", node.out_features, row_width, family, rom=True))
    if node.table is not None:
        memories.append(memory(f"{node.name}.requantizer.table", len(node.table), out_bits, family, rom=True))
    memories.append(memory(f"{node.name}.fifo.storage", OUTPUT_FIFO_DEPTH - 1, out_bits, family))
    return memories


def read_mux_luts(use: MemoryUse) -> int:
    """LUT4s that select a word of a memory built from 16-deep LUT RAMs, or from flip-flops: there, about one
    a stored bit, with the write enables (measured on iCE40 FIFOs of 4 to 32 words: 35 to 292 LUTs)."""
    if use.style == "logic":
        return use.width * (use.depth - 1)
    return use.width * max(0, ceil(use.depth / 16) - 1) if use.style == "distributed" else 0


def dense_cost(graph: QGraph, node: QDense, pe_of_row: np.ndarray, pe: int, family: str) -> LayerCost:
    """The layer's unit (hw/sparse_mvau.py) on `pe` elements with rows placed by `pe_of_row`.

    LUT and FF model, per component, counting registers bit by bit and logic by the operator it maps to:
    an adder or comparator of n bits is about n LUT4s, a 2:1 multiplexer of n bits n/2 (ECP5's wide-mux cells
    take the rest). Memories that go to flip-flops (iCE40's small ones) count as FFs and their read mux.
    """
    memories = dense_memories(graph, node, pe_of_row, pe, family)
    in_bits, out_bits = code_bits(graph, node.input), code_bits(graph, node.output, node.acc_bits)
    w, acc = node.weight_bits, node.acc_bits
    rows = np.bincount(pe_of_row, minlength=pe)
    entries = np.bincount(pe_of_row, weights=np.maximum(node.weight.row_nnz, 1), minlength=pe).astype(int)
    column = index_bits(node.weight.in_features)
    raw = node.multiplier is None
    shift_bits = requant_shift_bits(node)
    lut = ff = 0
    for element in range(pe):
        entry_bits, row_bits = index_bits(int(entries[element])) + 1, index_bits(int(rows[element]))
        lut += 2 * entry_bits + 2 * row_bits + acc + 34
        ff += entry_bits + (w + column + 1) + (w + 1) + (w + in_bits + 1) + (w + in_bits + 2) + acc + row_bits + 8
        ff += acc + row_bits + 2  # its output memory's read register, read address and enable
    row_width = next(use.width for use in memories if use.name == f"{node.name}.rows")
    lut += acc * (pe - 1) + 3 * index_bits(node.out_features) + 2 * column + 24  # streamer, loader, bank flags
    ff += 2 * row_width + acc + index_bits(node.out_features) + column + 16
    lut += 40 + out_bits  # output FIFO
    ff += 2 * out_bits + 12
    if not raw:
        product = acc + MULTIPLIER_BITS + 2
        splits = acc > product_slice_bits(family)
        shifted = product - requant_shift_base(node)  # the constant part of the shift is wiring
        lut += shifted * (shift_bits + 3) + product * splits + 2 * out_bits
        lut += shifted + product // 3  # the sticky bit of half-to-even: the bits below the half, masked, OR-ed
        top = acc % product_slice_bits(family)
        if splits and 0 < top <= LUT_SLICE_BITS:  # the top slice's shifted adds
            lut += top * (MULTIPLIER_BITS + 1 + top)
        ff += acc + row_width + 2 * product + out_bits + 9
    for use in memories:
        lut += read_mux_luts(use)
        if loaded_at_run_time(use.style):  # the address shared by loading and reading; a share of the loader
            lut += index_bits(use.depth) + LOADER_LUTS
            ff += LOADER_FFS
        if use.style == "logic":
            ff += use.depth * use.width
    dsp = pe * dsp_blocks(w, in_bits + 1, family)
    if dsp == 0:  # the MACs' multipliers are in logic
        lut += pe * w * (in_bits + 1)
    if not raw:
        dsp += requantizer_dsps(acc, family)
    return LayerCost(node.name, int(lut), int(ff), dsp, sum(use.blocks for use in memories), tuple(memories))


def skip_fifo_depth(layers_skipped: int, features: int) -> int:
    """Values a skip connection must hold while the long path works: every layer it skips can hold about
    five images (two input banks, the one it computes, two output banks) and a small output FIFO."""
    return layers_skipped * (5 * features + OUTPUT_FIFO_DEPTH) + 2


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
    return {tensor: skip_fifo_depth(longest - depth[tensor], node.features)
            for tensor in node.inputs if depth[tensor] < longest}


def add_cost(graph: QGraph, node: QAdd, family: str) -> LayerCost:
    """An elementwise Add (hw/elementwise.py): two rescaling multipliers, the sum, rounding and clamp; and the
    FIFO on its shorter input."""
    bits = [code_bits(graph, name) for name in node.inputs]
    out_bits = node.requant.bits
    total = max(bits) + MULTIPLIER_BITS + 4
    dsp = sum(dsp_blocks(b + 1, MULTIPLIER_BITS + 2, family) for b in bits)
    memories = tuple(memory(f"{node.name}_skip.storage", depth - 1, code_bits(graph, tensor), family)
                     for tensor, depth in skip_fifos(graph, node).items())
    lut = 3 * total + 2 * out_bits + 8 + node.shift // 3 + sum(read_mux_luts(use) + 30 for use in memories)
    ff = out_bits + 4 + sum(use.width + 3 * index_bits(use.depth) + (use.style == "logic") * use.depth * use.width
                            for use in memories)
    return LayerCost(node.name, lut=lut, ff=ff, dsp=dsp, bram=sum(use.blocks for use in memories), memories=memories)


def layer_cost(graph: QGraph, node: QDense | QAdd, family: str, pe: int | None = None,
               pe_of_row: np.ndarray | None = None) -> LayerCost:
    """What a layer costs as folded, or on `pe` elements with rows placed by `pe_of_row`."""
    if isinstance(node, QAdd):
        return add_cost(graph, node, family)
    if pe is None:
        pe, pe_of_row = node.fold.pe, node.fold.pe_of_row
    return dense_cost(graph, node, pe_of_row, pe, family)


RESOURCES = ("lut", "ff", "dsp", "bram", "spram")


def total(costs: list[LayerCost]) -> dict[str, int]:
    return {resource: sum(getattr(cost, resource) for cost in costs) for resource in RESOURCES}


def design_cost(graph: QGraph, family: str) -> dict[str, int]:
    """The folded graph's estimate, summed over its layers."""
    return total([layer_cost(graph, node, family) for node in graph.nodes])
