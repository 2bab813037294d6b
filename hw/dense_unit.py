"""The event-driven Dense unit (hw/event_dense.py) described in plain Python: what it stores, what its logic
costs, how many cycles an image takes and which events it counts. The compiler's fold, its resource estimate, the
golden event prediction, the Verilog and the energy model all read this, so a fact about the unit is
written down once.

A layer with `lanes` inputs and `groups` outputs is a grid of lanes x groups processing elements (PEs).
Input index j travels on lane j % lanes, as position j // lanes there; output row i belongs to group
i % groups, at position i // groups. PE (l, g) keeps, column by column, the nonzero weights where lane l's
columns meet group g's rows: an input event (position c, value x) on lane l makes every PE of the lane add
w * x into the accumulators of its rows that column c touches, one weight a cycle (a column with no weight
there still takes one cycle, for a zero entry). When every PE has the image, the groups drain their rows in
lockstep, one position a cycle: the lanes' partial sums are added, requantized, and each group sends the
nonzero results of its rows (always its last row, which marks the end of the image) as events on its lane.
"""
import re
from dataclasses import dataclass
from math import ceil

import numpy as np

from undense.compiler.numbers import MULTIPLIER_BITS, index_bits

EVENT_FIFO_DEPTH = {"ecp5": 16, "ice40": 4}  # each PE's queue of input events
OUTPUT_FIFO_DEPTH = 32  # each group's queue of output events: room for the drain's pipeline of about 15
BRANCH_QUEUES = 4  # queues a lane's second register stage feeds, where it has one (hw/event_dense.py)
BRANCHED_QUEUE_DEPTH = 8  # the shallowest queue a second stage may feed: its room is counted a place shorter
# A PE goes from one image's events to the next's without a gap (the other bank), so in steady state its
# pipeline's depth costs nothing per image; the drain takes a cycle to start and one to release the bank.
DRAIN_OVERHEAD = 2

# Each counted event and the accesses it makes to the unit's memories (by role: a memory's name less its PE
# or group), each (role, "read" or "write"); events with none are logic, priced by the energy model's kind.
EVENTS = {
    "stream_in": (),                        # an input event taken from a lane
    "event_reads": (("queue.storage", "write"), ("queue.storage", "read"), ("columns", "read")),  # into a PE
    "weight_reads": (("weights", "read"),),  # a weight entry read (zero entries of empty columns too)
    "macs": (),                             # a nonzero weight multiplied by the event's value
    "acc_updates": (("acc", "read"), ("acc", "write")),    # an accumulator read, added to and written back
    "drain_reads": (("acc", "read"), ("acc", "write")),    # an accumulator read at the drain, and cleared
    "requantized": (("rows", "read"),),     # a row's constants read and its sum requantized
    "table_reads": (("requantizer.table", "read"),),       # its code looked up in the activation table
    "stream_out": (("fifo.storage", "write"), ("fifo.storage", "read")),  # an output event queued and sent
}


def role(memory_name: str) -> str:
    """A memory's role in the unit: its name less the PE, queue, group or lane it belongs to and its bank
    (pe3.logic.acc1 -> acc, queue3.storage -> queue.storage, g1_rows -> rows, lane0_origins.table ->
    origins.table)."""
    name = re.sub(r"^queue\d+", "queue", re.sub(r"^(pe\d+\.(logic\.)?|g\d+_|lane\d+_)", "", memory_name))
    return "acc" if name in ("acc0", "acc1") else name


def pipeline_bits(weight_bits: int, value_bits: int, acc_bits: int, row_bits: int) -> int:
    """Register bits a weight entry moves through on its way down a PE's pipeline (hw/pe.py): the entry
    (value, row), the multiplier's operands twice (the PE's registers and the DSP block's), the row at each of
    the four stages to the product and the one after it, its bank's read and write address, the event's value
    at two stages, the product twice (the block's register and the PE's), and the sum, written a cycle later
    and kept another for the read-modify-writes of the next two entries."""
    return 3 * weight_bits + 8 * row_bits + 4 * value_bits + 4 * acc_bits


def lane_features(count: int, lanes: int, lane: int, block: int = 1, row_width: int = 0) -> np.ndarray:
    """The indices of `count` that lane (or group) `lane` of `lanes` carries, position by position: runs of
    `block` consecutive indices (1, or a feature map's channel, whose positions stay together) dealt to the
    lanes in turn; with runs of one, index i goes to lane i % lanes at position i // lanes. With a `row_width`,
    the lane's channels travel row by row instead (a map's row y of each of its channels in turn, then row
    y + 1), as a convolution unit sends a map that rolling windows read (hw/conv_unit.py)."""
    runs = np.arange(lane, ceil(count / block), lanes)
    features = runs[:, None] * block + np.arange(block)
    if row_width:
        features = features.reshape(len(runs), -1, row_width).transpose(1, 0, 2)
    return features.reshape(-1)


def row_ends(count: int, lanes: int, lane: int, block: int, row_width: int) -> np.ndarray:
    """The last index of each row on a lane whose map travels row by row (lane_features): sent even where it is
    zero, so that a rolling window that reads the lane learns the row has passed."""
    features = lane_features(count, lanes, lane, block, row_width)
    per_row = len(features) // (block // row_width)
    return features[per_row - 1::per_row]


def positions(count: int, ways: int, way: int, block: int = 1) -> int:
    """How many of `count` indices go to lane or group `way` of `ways` (lane_features)."""
    return len(range(way, ceil(count / block), ways)) * block


@dataclass(frozen=True)
class Block:
    """The weights of one PE: entries (value, local row) column by column, and each local column's first entry
    and entry count (at least one: an empty column holds one zero entry). A convolution's PE (hw/conv_unit.py)
    holds taps (value, local row offset, dy, dx) channel by channel, and each position's (channel, y, x)
    origin."""
    entries: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    counts: tuple[int, ...]
    rows: int
    origins: tuple[tuple[int, int, int], ...] | None = None


def block(codes: np.ndarray, lanes: int, groups: int, lane: int, group: int) -> Block:
    """PE (lane, group)'s share of the weight codes (out, in)."""
    part = codes[group::groups, lane::lanes]
    entries, starts, counts = [], [], []
    for column in range(part.shape[1]):
        rows = np.flatnonzero(part[:, column])
        starts.append(len(entries))
        entries += [(int(part[row, column]), int(row)) for row in rows] or [(0, 0)]
        counts.append(max(len(rows), 1))
    return Block(tuple(entries), tuple(starts), tuple(counts), part.shape[0])


def column_counts(codes: np.ndarray, lanes: int, groups: int) -> np.ndarray:
    """Entries (at least one) of every PE in every input column: [in_features, groups], the PE of column j
    being (j % lanes, g)."""
    out, n_in = codes.shape
    counts = np.zeros((n_in, groups), dtype=np.int64)
    nonzero = codes != 0
    for group in range(groups):
        counts[:, group] = nonzero[group::groups].sum(axis=0)
    return np.maximum(counts, 1)


def input_events(values: np.ndarray, lanes: int, sparse: bool, block: int = 1, row_width: int = 0) -> np.ndarray:
    """Which inputs travel as events, per image: [images, in_features] booleans. On a sparse edge a zero value
    stays home, except each lane's last position, which marks the end of the image, and on a map that travels
    row by row the last position of each row (row_ends)."""
    present = values != 0 if sparse else np.ones(values.shape, dtype=bool)
    n = values.shape[1]
    for lane in range(min(lanes, ceil(n / block))):
        present[:, lane_features(n, lanes, lane, block)[-1]] = True
        if row_width:
            present[:, row_ends(n, lanes, lane, block, row_width)] = True
    return present


def split_events(present: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The events with a value, which issue their column's entries, and those of value zero (an image's or a
    row's end, sent though zero), which issue one entry each: [images, in] each, as integers."""
    return (present & (values != 0)).astype(np.int64), (present & (values == 0)).astype(np.int64)


def pe_work(present: np.ndarray, values: np.ndarray, counts: np.ndarray, lanes: int, block: int = 1) -> np.ndarray:
    """Cycles each PE spends on each image: the entries its lane's events issue (split_events).
    [images, lanes, groups]."""
    images, n_in = present.shape
    valued, zero = split_events(present, values)
    work = np.zeros((images, lanes, counts.shape[1]), dtype=np.int64)
    for lane in range(lanes):
        columns = lane_features(n_in, lanes, lane, block)
        work[:, lane, :] = valued[:, columns] @ counts[columns] + zero[:, columns].sum(axis=1)[:, None]
    return work


def lane_positions(count: int, lanes: int, block: int = 1) -> int:
    """Positions on the widest of `lanes` lanes carrying `count` indices: lane 0's."""
    return positions(count, lanes, 0, block)


def drain_cycles(out_features: int, groups: int, block: int = 1) -> int:
    return lane_positions(out_features, groups, block)


def image_cycles(present: np.ndarray, values: np.ndarray, counts: np.ndarray, lanes: int, out_features: int,
                 in_block: int = 1, out_block: int = 1, window: bool = False) -> np.ndarray:
    """Cycles per image of the layer, image by image: its busiest PE or its drain, whichever is longer (the two
    overlap, on the two banks of accumulators), plus their fixed overheads. A rolling window (hw/conv_unit.py)
    drains through its PEs' pipelines, a cycle of each PE's a position, so there the two add up."""
    groups = counts.shape[1]
    busiest = pe_work(present, values, counts, lanes, in_block).reshape(len(present), -1).max(axis=1)
    drain = drain_cycles(out_features, groups, out_block)
    return busiest + drain if window else np.maximum(busiest, drain + DRAIN_OVERHEAD)


def events(counts: np.ndarray, macs: np.ndarray, present: np.ndarray, values: np.ndarray, sent: np.ndarray,
           lanes: int, table: bool, seconds: np.ndarray | None = None) -> dict[str, int]:
    """The counts the unit's counters must show for these images: `counts` the entries each column issues in
    each group's PE ([in, groups], column_counts), `macs` the nonzero products each column makes ([in]),
    `present` the input events and `values` the inputs ([images, in]), `sent` the output events ([images, out]);
    `seconds` the input events that travel with the one before them (hw/event_pairs.py), whose entries are not
    read again."""
    arrived = int(present.sum())
    valued, zero = (kind.sum(axis=0) for kind in split_events(present, values))  # per column, over images
    entries = int(valued @ counts.sum(axis=1) + zero.sum() * counts.shape[1])
    paired = np.zeros(present.shape[1], dtype=np.int64) if seconds is None else seconds.sum(axis=0)
    images, out_features = len(present), sent.shape[1]
    return {"stream_in": arrived, "event_reads": (arrived - int(paired.sum())) * counts.shape[1],
            "weight_reads": entries - int(paired @ counts.sum(axis=1)), "macs": int(valued @ macs),
            "acc_updates": entries, "drain_reads": images * out_features * lanes,
            "requantized": images * out_features, "table_reads": images * out_features if table else 0,
            "stream_out": int(sent.sum())}


@dataclass(frozen=True)
class Memory:
    name: str     # within the layer, as in the Verilog: pe3.weights, queue3.storage, g1_rows
    depth: int
    width: int
    rom: bool
    weights: bool = False  # a PE's weight memory (the one that may be loaded at run time)
    stored: int | None = None  # bits synthesis keeps of a ROM's words: those that vary (None: all of them)


def wrapped(values: np.ndarray, bits: int) -> np.ndarray:
    """Integers as two's complement `bits`-bit values."""
    half = 1 << (bits - 1)
    return (values + half) % (2 * half) - half


def hardware_bias(bias: np.ndarray, row_sums: np.ndarray, offset: int, acc_bits: int) -> np.ndarray:
    """The bias the unit adds: a PE adds w x (code - offset), so the bias takes back what the offset removed
    (`row_sums`: each row's weights summed); sums wrap at acc_bits, exact since the result fits."""
    return wrapped(bias + row_sums * offset, acc_bits)


def row_words(constants: list[tuple[int, int, int]], groups: int, acc_bits: int, multiplier_bits: int,
              block: int = 1, repeat: int = 1, row_width: int = 0) -> list[list[int]]:
    """Each group's row-constant memory as words, its rows' (bias, multiplier, stored shift) packed low to high
    (hw/requantizer.RequantParams.row_layout), padded with zero words to the drain's steps; one word for each
    `repeat` rows that share their constants."""
    steps = drain_cycles(len(constants), groups, block) // repeat
    words = []
    for group in range(groups):
        packed = [(bias % (1 << acc_bits)) | multiplier << acc_bits | shift << (acc_bits + multiplier_bits)
                  for bias, multiplier, shift in (constants[row] for row in lane_features(len(constants), groups,
                                                                                          group, block,
                                                                                          row_width)[::repeat])]
        words.append(packed + [0] * (steps - len(packed)))
    return words


def varying_bits(words: list[int]) -> int:
    """Bits of a ROM that differ between its words: synthesis stores only those (the rest are constants)."""
    differ = 0
    for word in words:
        differ |= word ^ words[0]
    return bin(differ).count("1")


def memories(codes: np.ndarray, lanes: int, groups: int, weight_bits: int, value_bits: int, acc_bits: int,
             row_bits: int, rows: list[list[int]], out_value_bits: int, table_entries: int, table_bits: int,
             fifo_depth: int) -> list[Memory]:
    """Every memory of the unit, as hw/event_dense.py builds it: per PE its event queue, weights, column table
    and two banks of accumulators; per group its row constants (`row_bits` wide; `rows`, their row_words, say
    which bits synthesis keeps), table and output queue."""
    n_out, n_in = codes.shape
    found = []
    for lane in range(lanes):
        event_bits = index_bits(positions(n_in, lanes, lane)) + value_bits + 1
        for group in range(groups):
            part = block(codes, lanes, groups, lane, group)
            found += pe_memories(lane * groups + group, part, weight_bits + index_bits(part.rows), column_bits(part),
                                 event_bits, acc_bits, fifo_depth)
    return found + group_memories(drain_cycles(n_out, groups), row_bits, rows, out_value_bits, table_entries,
                                  table_bits)


def pe_memories(pe: int, part: Block, entry_bits: int, column_bits: int, event_bits: int, acc_bits: int,
                fifo_depth: int, banks: int = 2) -> list[Memory]:
    """A PE's memories: its event queue, weights (`entry_bits` an entry), column table, accumulator banks (two;
    a convolution's rolling window is one)."""
    return [Memory(f"queue{pe}.storage", fifo_depth - 1, event_bits, rom=False),
            Memory(f"pe{pe}.weights", len(part.entries), entry_bits, rom=True, weights=True),
            Memory(f"pe{pe}.columns", len(part.starts), column_bits, rom=True),
            *(Memory(f"pe{pe}.logic.acc{bank}", part.rows, acc_bits, rom=False) for bank in range(banks))]


def group_memories(steps: int, row_bits: int, rows: list[list[int]], out_value_bits: int, table_entries: int,
                   table_bits: int) -> list[Memory]:
    """Each group's row constants (`rows`: their words, row_words), activation table and output queue."""
    found = []
    for group, words in enumerate(rows):
        found.append(Memory(f"g{group}_rows", len(words), row_bits, rom=True, stored=varying_bits(words)))
        if table_entries:
            found.append(Memory(f"g{group}_requantizer.table", table_entries, table_bits, rom=True))
        found.append(Memory(f"g{group}_fifo.storage", OUTPUT_FIFO_DEPTH - 1, index_bits(steps) + out_value_bits + 1,
                            rom=False))
    return found


def logic_cost(memories: list, lanes: int, groups: int, in_features: int, out_features: int, in_bits: int,
               out_bits: int, weight_bits: int, acc_bits: int, row_bits: int, queue_depth: int) -> tuple[int, int]:
    """LUT4s and flip-flops of the unit's logic, given its memories (each with name, depth and width): its
    requantizers aside (requantizer_cost) and the memories' own logic too (read multiplexers, flip-flops where a
    memory is built from them), which depends on where the family places them (compiler/resources.py).

    Counted register by register and operator by operator: an adder or comparator of n bits is about n LUT4s, a
    2:1 multiplexer of n bits n/2; calibrated against Yosys on the bundled model: synth_ecp5 of single PEs
    and queues of its 97-PE grid (fc1 318, fc2 356 and 375, fc3 311 LUT4s a PE; 42 a queue), and the 85F's
    whole designs of 107 and 117 PEs (46,904 and 50,220 LUT4s), which the estimate had 20% low.
    """
    steps = drain_cycles(out_features, groups)
    event_bits = index_bits(lane_positions(in_features, lanes)) + in_bits + 1
    lut = ff = 0
    for memory in memories:
        if memory.name.endswith(".weights"):  # one PE: issue counters, pipeline registers, accumulator add,
            # its two forwards and the bank's clear (an acc_bits-wide mux each), the drain's read address
            entry_bits, row = index_bits(memory.depth), memory.width - weight_bits
            lut += 3 * entry_bits + 6 * acc_bits + 2 * row + in_bits + 20
            ff += pipeline_bits(weight_bits, in_bits, acc_bits, row) + 3 * entry_bits + 4 * row + 2 * index_bits(
                row + 1) + 31 + acc_bits  # and the issue counters, the event's registers, the drain's
            lut += 28 + in_bits + entry_bits  # its event queue's pointers, level and room test
            ff += 2 * index_bits(queue_depth) + in_bits + entry_bits + 4
    if groups > 1:  # the register stage in front of each lane's queues, and the second where there is one
        lut += lanes * (event_bits + 2)
        ff += lanes * (2 * event_bits + 2)
        if groups > BRANCH_QUEUES and queue_depth >= BRANCHED_QUEUE_DEPTH:
            ff += lanes * ceil(groups / BRANCH_QUEUES) * (event_bits + 1)
        if groups > BRANCH_QUEUES:  # and the drain's command through a second stage (hw/event_dense.py)
            ff += lanes * ceil(groups / BRANCH_QUEUES) * (index_bits(steps) + 4)
    lut += groups * (lanes - 1) * acc_bits + 3 * index_bits(steps) + 30  # adder trees, drain counters
    ff += groups * (2 * lanes - 1) * acc_bits + groups * row_bits + 2 * index_bits(steps) + 10
    in_flight = index_bits(OUTPUT_FIFO_DEPTH + 1)  # each group's count of positions on their way to its queue
    lut += groups * (40 + 2 * out_bits + in_flight)  # output queues and the nonzero test
    ff += groups * (2 * out_bits + index_bits(steps) + 12 + in_flight)
    return lut, ff


def requantizer_cost(acc_bits: int, row_bits: int, out_bits: int, shift_bits: int, shift_base: int, slice_bits: int,
                     logic_slice_bits: int) -> tuple[int, int]:
    """LUT4s and flip-flops of one group's requantizer (hw/requantizer.py): the product in slices of
    `slice_bits` (a top slice of at most `logic_slice_bits` in shifted adds) between registers of their own, the
    barrel shift, rounding, clamp."""
    product = acc_bits + MULTIPLIER_BITS + 2
    splits = acc_bits > slice_bits
    shifted = product - shift_base  # the constant part of the shift is wiring
    lut = shifted * (shift_bits + 3) + product * splits + 2 * out_bits + shifted + product // 3
    top = acc_bits % slice_bits
    if splits and 0 < top <= logic_slice_bits:
        lut += top * (MULTIPLIER_BITS + 1 + top)
    return lut, 2 * acc_bits + row_bits + MULTIPLIER_BITS + 2 * shift_bits + 3 * product + out_bits + 11


def column_bits(part: Block) -> int:
    """A column table entry: the column's first entry and its entry count less one."""
    return index_bits(len(part.entries)) + index_bits(max(part.counts))
