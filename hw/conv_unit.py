"""The event-driven convolution unit, described: a convolution scattered on the Dense unit's grid of PEs
(hw/event_dense.py builds both; hw/dense_unit.py describes the grid).

An input event (channel c, row y, column x, value v) meets the nonzero taps of its channel: each tap
(out channel o, dy, dx, weight w) adds w * v into output (o, y * S + dy, x * S + dx) where that lies inside the
output map. One description covers
- ConvTranspose, stride s: S = s, (dy, dx) = (ky, kx) - pads: a strided scatter, no zeros inserted;
- Conv, stride 1: S = 1, (dy, dx) = pads - (ky, kx);
- nearest Upsample by u, then a Conv of stride 1: S = u and (dy, dx) = (a, b) + pads - (ky, kx) for each of
  the u x u copies (a, b) of an input pixel. Taps of one channel that land on the same (o, dy, dx) add into one
  weight, so an input meets each output it touches once, as in compiler/geometry.py's matrix;
- groups (depthwise): a channel's taps reach only its group's output channels.
The weights are stored as taps, never per position: the PE adds the event's origin (y * S, x * S, from its
lane's origin table) to the tap's offset (hw/pe.py), and a tap that falls outside the map adds nothing. A lane's
PEs hold the taps of the channels that lane carries only (on an edge in runs of a channel, a lane has whole
channels of its own).

Output channel o belongs to group o % groups, which holds its channels' maps one after another: local row
(o // groups) * H * W + y * W + x. A unit with several groups sends each channel's positions together on its
group's lane (an edge with runs of H * W: dense_unit.lane_features); only another convolution reads such an
edge.

Where only convolutions read a map, it travels row by row instead (Flow.rows_out, ir.Edge.row_width): a group
holds it as y * C_g * W + (o // groups) * W + x and sends each row of all its channels in turn, and the last
position of each row even where it is zero. A convolution that reads such a map accumulates in a rolling window:
R output rows (window_shape: the rows one input row reaches and one more, a power of two), output row y at
(y mod R) * RW + (o // groups) * W + x. Its origin table tells each event the last output row it reaches and,
for a row's last position, how many output rows are complete once it has passed (window_marks): the PE takes an
event once that row fits in the window, and the layer drains a row once every PE has passed it (hw/pe.py,
hw/event_dense.py). A row's end reaches every lane, so a lane whose queue is empty has passed the rows its
producer has sent beyond, and a PE that waits for room waits only for rows every other lane has finished.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse

from undense.compiler.geometry import Conv2d
from undense.compiler.numbers import index_bits
from undense.hw import dense_unit
from undense.hw.dense_unit import Block, Memory, drain_cycles, group_memories, lane_features, pe_memories

# What each counted event touches (hw/dense_unit.EVENTS), and an input event's lookup of its origin
EVENTS = {**dense_unit.EVENTS, "stream_in": (("origins.table", "read"),)}
# A window drains a row of positions before it asks its PEs about the next: their answers come through registers
# (hw/event_dense.py), this many cycles late at most
MIN_ROW_POSITIONS = 8


@dataclass(frozen=True)
class Flow:
    """How a convolution's maps travel and where its sums wait: its input's runs and row width (ir.Edge), whether
    its groups' maps are laid out and drained row by row (y, then channel, then x) rather than channel by channel,
    and whether they wait in a rolling window of rows rather than a whole map."""

    in_block: int = 1
    in_row_width: int = 0
    rows_out: bool = False
    window: bool = False


class ScatterTaps(NamedTuple):
    """A convolution's nonzero taps, sorted by input channel, then output channel, dy, dx."""

    channels: np.ndarray  # input channel
    outs: np.ndarray      # output channel
    dy: np.ndarray
    dx: np.ndarray
    weights: np.ndarray   # integer codes (or floats), never 0


@dataclass(frozen=True)
class Spatial:
    """What a scattering PE's logic needs to know of its layer's addresses (PEs of one layer share it): the
    output map's size and the widths of a tap's fields and of an event's origin."""

    height: int
    width: int
    offset_bits: int  # a tap's local row offset, signed
    step_bits: int    # a tap's dy and dx, signed
    base_bits: int    # an origin's row base y * S * row_stride + x * S (the PE computes it)
    y_bits: int       # an origin's y * S
    x_bits: int       # an origin's x * S
    row_stride: int   # positions from one row of a group's map to the next (W, or its channels times W)
    window_rows: int = 0  # rows of the rolling window, a power of two (0: the whole map)
    window_row_bits: int = 0  # a window row's positions, as address bits (its channels times W, rounded up)
    count_bits: int = 0  # the PE's counts of rows, which wrap: enough for the rows in flight

    @property
    def row_bits(self) -> int:
        """Bits of a window's address: its row, then the position in it."""
        return (self.window_rows - 1).bit_length() + self.window_row_bits


def unsupported(geometry: Conv2d) -> str | None:
    """Why the unit cannot scatter this convolution (None: it can)."""
    if not geometry.transposed and geometry.stride != (1, 1):
        return (f"a Conv of stride {'x'.join(map(str, geometry.stride))} (a gather that skips positions, not a "
                "scatter): the convolution unit takes Conv of stride 1, nearest Upsample + Conv and ConvTranspose")
    return None


def scatters(node) -> bool:
    """Whether a layer (a QDense) is a convolution this unit scatters."""
    return node.is_convolution and unsupported(node.geometry) is None


def stride(geometry: Conv2d) -> tuple[int, int]:
    """How far apart two neighbouring inputs' taps land: S per axis."""
    return geometry.stride if geometry.transposed else geometry.upsample


def scatter_taps(geometry: Conv2d, kernel: np.ndarray) -> ScatterTaps:
    """The kernel (out channels, in / groups, kh, kw) as merged nonzero taps."""
    c_out, per_group_in, kh, kw = geometry.kernel_shape
    per_group_out = c_out // geometry.groups
    o, j, ky, kx = (a.reshape(-1) for a in np.meshgrid(np.arange(c_out), np.arange(per_group_in), np.arange(kh),
                                                        np.arange(kw), indexing="ij"))
    weights = np.asarray(kernel).reshape(-1)
    channels = (o // per_group_out) * per_group_in + j
    top, left = geometry.pads[0], geometry.pads[1]
    if geometry.transposed:
        dy, dx = ky - top, kx - left
    else:  # every copy (a, b) of the upsampled pixel
        uy, ux = geometry.upsample
        a, b = (c.reshape(-1) for c in np.meshgrid(np.arange(uy), np.arange(ux), indexing="ij"))
        copies = len(a)
        dy = (a[None, :] + top - ky[:, None]).reshape(-1)
        dx = (b[None, :] + left - kx[:, None]).reshape(-1)
        o, channels, weights = (np.repeat(v, copies) for v in (o, channels, weights))
    keep = weights != 0
    keys = np.stack([channels[keep], o[keep], dy[keep], dx[keep]], axis=1)
    unique, where = np.unique(keys, axis=0, return_inverse=True)
    summed = np.zeros(len(unique), dtype=weights.dtype)
    np.add.at(summed, where.reshape(-1), weights[keep])
    nonzero = summed != 0
    unique = unique[nonzero]
    return ScatterTaps(*(unique[:, k].astype(np.int64) for k in range(4)), summed[nonzero])


def origins(geometry: Conv2d) -> tuple[np.ndarray, np.ndarray]:
    """Each input feature's origin in the output map: (y * S, x * S), per flattened input feature."""
    c_in, h_in, w_in = geometry.in_shape
    sy, sx = stride(geometry)
    y, x = np.meshgrid(np.arange(h_in) * sy, np.arange(w_in) * sx, indexing="ij")
    return np.tile(y.reshape(-1), c_in), np.tile(x.reshape(-1), c_in)


def scatter_matrix(geometry: Conv2d, taps: ScatterTaps) -> scipy.sparse.csr_array:
    """The (out, in) matrix the unit computes: every input feature's taps, where they land inside the map."""
    c_in, h_in, w_in = geometry.in_shape
    _, h_out, w_out = geometry.out_shape
    oy, ox = origins(geometry)
    features = np.arange(geometry.in_features)
    column = np.repeat(features, np.bincount(taps.channels, minlength=c_in)[features // (h_in * w_in)])
    first = np.concatenate([[0], np.cumsum(np.bincount(taps.channels, minlength=c_in))])
    tap = np.concatenate([np.arange(first[c], first[c + 1]) for c in features // (h_in * w_in)]).astype(np.int64)
    y, x = oy[column] + taps.dy[tap], ox[column] + taps.dx[tap]
    inside = (y >= 0) & (y < h_out) & (x >= 0) & (x < w_out)
    rows = taps.outs[tap] * h_out * w_out + y * w_out + x
    matrix = scipy.sparse.coo_array((taps.weights[tap][inside], (rows[inside], column[inside])),
                                    shape=(geometry.out_features, geometry.in_features)).tocsr()
    matrix.sort_indices()
    return matrix


def strides(geometry: Conv2d, groups: int, flow: Flow) -> tuple[int, int]:
    """Positions from one channel of a group's accumulators to the next, and from one row to the next (in a
    window, the row is the window's and the PE computes it)."""
    channels, height, width = geometry.out_shape
    if flow.rows_out:
        return width, -(-channels // groups) * width
    return height * width, width


def group_taps(taps: ScatterTaps, geometry: Conv2d, groups: int, group: int,
               flow: Flow = Flow()) -> tuple[np.ndarray, ...]:
    """The taps group `group`'s PEs hold, as (channel, weight, local row offset, dy, dx)."""
    channel_stride, row_stride = strides(geometry, groups, flow)
    mine = taps.outs % groups == group
    rows = 0 if flow.window else taps.dy[mine] * row_stride
    offsets = (taps.outs[mine] // groups) * channel_stride + rows + taps.dx[mine]
    return taps.channels[mine], taps.weights[mine], offsets, taps.dy[mine], taps.dx[mine]


def column_counts(geometry: Conv2d, taps: ScatterTaps, groups: int) -> np.ndarray:
    """Entries (at least one) each input feature issues in each group's PE: its channel's taps there."""
    c_in, h_in, w_in = geometry.in_shape
    per_channel = np.stack([np.bincount(taps.channels[taps.outs % groups == g], minlength=c_in)
                            for g in range(groups)], axis=1)
    return np.maximum(np.repeat(per_channel, h_in * w_in, axis=0), 1)


def macs(geometry: Conv2d, taps: ScatterTaps) -> np.ndarray:
    """Nonzero products each input feature makes: its taps that land inside the map."""
    return np.diff(scatter_matrix(geometry, taps).tocsc().indptr)


def window_shape(geometry: Conv2d, taps: ScatterTaps, groups: int) -> tuple[int, int]:
    """A rolling window's rows and a row's positions, both powers of two. An input in row y reaches output rows
    y S + dy_min to y S + dy_max; the window holds every row an input may still reach and one more, drained
    while the next rows fill (so that the PEs of a lane that is ahead never wait for a row they are not done
    with: hw/event_dense.py)."""
    channels, _, width = geometry.out_shape
    dy = np.concatenate([taps.dy, [0]])
    span = int(dy.max()) - min(int(dy.min()), 0) + 1
    return 1 << span.bit_length(), 1 << (-(-channels // groups) * width - 1).bit_length()


def window_marks(geometry: Conv2d, taps: ScatterTaps, y: int) -> tuple[int, int]:
    """For an input in row y (its origin y S): the last output row its taps reach, and how many output rows are
    complete once its row has passed (all of them after the last input row)."""
    _, h_in, _ = geometry.in_shape
    _, h_out, _ = geometry.out_shape
    sy = stride(geometry)[0]
    dy = np.concatenate([taps.dy, [0]])
    top = min(max(y + int(dy.max()), 0), h_out - 1)
    done = h_out if y == (h_in - 1) * sy else min(max(y + sy + int(dy.min()), 0), h_out)
    return top, done


def block(geometry: Conv2d, taps: ScatterTaps, lanes: int, groups: int, lane: int, group: int,
          flow: Flow = Flow()) -> Block:
    """PE (lane, group)'s share: its group's taps of the channels its lane carries, channel by channel (a channel
    without any holds one zero entry), each channel's first entry and count, and per position of its lane the
    channel and the origin (and in a window, the rows it reaches and finishes, and whether it ends its row). A
    channel its lane never carries (an edge in runs of a channel deals each lane whole channels) keeps no taps:
    its column points at entry 0, which no event reads."""
    c_in, h_in, w_in = geometry.in_shape
    c_out, h_out, w_out = geometry.out_shape
    channels, weights, offsets, dy, dx = group_taps(taps, geometry, groups, group, flow)
    features = lane_features(geometry.in_features, lanes, lane, flow.in_block, flow.in_row_width)
    channel_of = features // (h_in * w_in)
    carried = np.isin(np.arange(c_in), channel_of)
    entries, starts, counts = [], [], []
    for channel in range(c_in):
        mine = np.flatnonzero(channels == channel)
        starts.append(len(entries) if carried[channel] else 0)
        counts.append(max(len(mine), 1))
        if carried[channel]:
            entries += [(int(weights[t]), int(offsets[t]), int(dy[t]), int(dx[t])) for t in mine] or [(0, 0, 0, 0)]
    oy, ox = origins(geometry)
    origin = [(int(c), int(oy[f]), int(ox[f])) for c, f in zip(channel_of, features, strict=True)]
    if flow.window:
        rows, row_words = window_shape(geometry, taps, groups)
        per_row = len(features) // h_in
        origin = [(*found, *window_marks(geometry, taps, found[1]), int(position % per_row == per_row - 1))
                  for position, found in enumerate(origin)]
        return Block(tuple(entries or [(0, 0, 0, 0)]), tuple(starts), tuple(counts), rows * row_words, tuple(origin))
    rows = len(range(group, c_out, groups)) * h_out * w_out
    return Block(tuple(entries or [(0, 0, 0, 0)]), tuple(starts), tuple(counts), rows, tuple(origin))


def seconds(geometry: Conv2d, present: np.ndarray, values: np.ndarray, lanes: int, flow: Flow) -> np.ndarray:
    """The input events ([images, in]) that travel with the event before them on their lane
    (hw/event_pairs.py), each lane's in the order its positions arrive."""
    _, h_in, w_in = geometry.in_shape
    found = np.zeros(present.shape, dtype=bool)
    for lane in range(lanes):
        features = lane_features(geometry.in_features, lanes, lane, flow.in_block, flow.in_row_width)
        found[:, features] = lane_seconds(present[:, features], values[:, features], features // (h_in * w_in),
                                          features % (h_in * w_in) // w_in)
    return found


def lane_seconds(present: np.ndarray, values: np.ndarray, channel: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Which events of a lane go as the second of a pair ([images, positions], the lane's positions in their
    order): `present` and `values` the events, `channel` and `row` each position's. Greedy, in arrival order:
    each run of nonzero events of one channel and row goes two by two (hw/event_pairs.py)."""
    images, positions = np.nonzero(present)  # in arrival order: image by image, position by position
    nonzero = values[images, positions] != 0
    key = np.stack([images, channel[positions], row[positions]])
    starts = np.ones(len(images), dtype=bool)  # where a run of events that may pair begins
    starts[1:] = (key[:, 1:] != key[:, :-1]).any(axis=0) | ~nonzero[:-1]
    index = np.arange(len(images))
    offset = index - np.maximum.accumulate(np.where(starts, index, 0))
    found = np.zeros(present.shape, dtype=bool)
    found[images, positions] = nonzero & (offset % 2 == 1)
    return found


def spatial(geometry: Conv2d, taps: ScatterTaps, groups: int, flow: Flow = Flow()) -> Spatial:
    """The field widths every PE of the layer shares."""
    _, h_out, w_out = geometry.out_shape
    oy, ox = origins(geometry)
    offsets = np.concatenate([group_taps(taps, geometry, groups, g, flow)[2] for g in range(groups)] + [[0]])
    steps = np.concatenate([taps.dy, taps.dx, [0]])
    row_stride = 0 if flow.window else strides(geometry, groups, flow)[1]
    window = {}
    if flow.window:
        rows, row_words = window_shape(geometry, taps, groups)
        window = {"window_rows": rows, "window_row_bits": (row_words - 1).bit_length(),
                  "count_bits": index_bits(4 * (h_out + rows))}
    return Spatial(h_out, w_out, signed_bits(offsets), signed_bits(steps),
                   index_bits(int((oy * row_stride + ox).max()) + 1), index_bits(int(oy.max()) + 1),
                   index_bits(int(ox.max()) + 1), row_stride, **window)


def signed_bits(values: np.ndarray) -> int:
    """Bits of a two's complement field that holds every value."""
    low, high = int(np.min(values)), int(np.max(values))
    return max(high.bit_length(), (-low - 1).bit_length() if low < 0 else 0) + 1


def entry_bits(weight_bits: int, shape: Spatial) -> int:
    """A weight entry: the weight, its local row offset, dy and dx."""
    return weight_bits + shape.offset_bits + 2 * shape.step_bits


def origin_bits(channels: int, shape: Spatial) -> int:
    """A lane's origin table entry (per position): the channel and the origin (y * S, x * S); in a window, the
    last row the position reaches, the rows complete once it has passed, and whether it ends its row."""
    marks = 2 * index_bits(shape.height + 1) + 1 if shape.window_rows else 0
    return index_bits(channels) + shape.y_bits + shape.x_bits + marks


def pair_bits(value_bits: int, shape: Spatial) -> int:
    """What an event carries of the earlier one it pairs with (hw/event_pairs.py): its value, its column and
    the flag that says it is there."""
    return value_bits + shape.x_bits + 1


def memories(geometry: Conv2d, taps: ScatterTaps, lanes: int, groups: int, flow: Flow, out_block: int,
             weight_bits: int, value_bits: int, acc_bits: int, row_bits: int, rows: list[list[int]],
             out_value_bits: int, table_entries: int, table_bits: int, fifo_depth: int) -> list[Memory]:
    """Every memory of the unit (hw/event_dense.py): a Dense unit's (dense_unit.pe_memories, group_memories),
    the weights as taps and the column table per input channel, and per lane its origin table; a window's PE
    has one bank."""
    shape = spatial(geometry, taps, groups, flow)
    found = []
    for lane in range(lanes):
        lane_positions = dense_unit.positions(geometry.in_features, lanes, lane, flow.in_block)
        looked_up = origin_bits(geometry.in_shape[0], shape)
        # the queues carry the channel and the origin looked up, and an earlier event's value and column with the
        # flag that says it is there (hw/event_pairs.py)
        event_bits = looked_up + value_bits + 1 + pair_bits(value_bits, shape)
        found.append(Memory(f"lane{lane}_origins.table", lane_positions, looked_up, rom=True))
        for group in range(groups):
            part = block(geometry, taps, lanes, groups, lane, group, flow)
            column = index_bits(len(part.entries)) + index_bits(max(part.counts))
            found += pe_memories(lane * groups + group, part, entry_bits(weight_bits, shape), column, event_bits,
                                 acc_bits, fifo_depth, banks=1 if flow.window else 2)
    return found + group_memories(drain_cycles(geometry.out_features, groups, out_block), row_bits, rows,
                                  out_value_bits, table_entries, table_bits)


def logic_cost(shape: Spatial, lanes: int, pes: int, channels: int, value_bits: int, rows: int,
               acc_bits: int) -> tuple[int, int]:
    """LUT4s and flip-flops a convolution's unit adds to a Dense unit's (dense_unit.logic_cost): per lane the
    lookup's two stages (hw/stream_lookup.py: the event, then the event with the word found) and the pairing
    stage after them (hw/event_pairs.py: the event held, its test against the next (channel, row, both nonzero)
    and the output register, which carries the held one's value and column beside the event); per PE the
    origin carried to stage 2, its row base (y times the map's width in shifted adds, plus x), the tap's row (an
    adder) and its bounds (two adders and four comparisons), and a pair's first value and column with the choice
    between them and the event's. Counted operator by operator, not yet calibrated against Yosys."""
    origin = shape.y_bits + shape.x_bits
    event = index_bits(channels) + origin + value_bits + 1
    pair = pair_bits(value_bits, shape)
    lut = pes * (index_bits(rows) + 3 * (origin + 8) + bin(shape.row_stride).count("1") * shape.base_bits
                 + pair // 2 + 4)
    ff = pes * (2 * origin + shape.base_bits + 2 + pair + 1)
    if shape.window_rows:  # a window's PE: its four row counts, the taken event's rows, the room (two adders)
        # and its test (a comparison), the slot's adder; the drain's entry down the pipeline (its flag to the product's
        # stage, its row twice, the sum out); the lane's command of first and last position. The two banks'
        # clear, their multiplexer and their read's registers are gone (dense_unit.logic_cost counts them)
        slot_bits, count = (shape.window_rows - 1).bit_length(), shape.count_bits
        lut += pes * (3 * count + slot_bits + 8) - pes * acc_bits
        ff += pes * (5 * count + 3 * slot_bits + 2 * shape.row_bits + acc_bits + 10) + lanes * 2
    pairing_lut = index_bits(channels) + shape.y_bits + value_bits + (event + pair) // 2 + 4
    return lut + lanes * (event + 4 + pairing_lut), ff + lanes * (5 * event + pair + 6)
