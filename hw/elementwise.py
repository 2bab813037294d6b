"""Elementwise Add of two event streams, lane by lane, requantized:

    out = clamp(zp + rshift_round((a - za) * Ma + (b - zb) * Mb, s))

Each lane of `a` and of `b` carries the same positions in increasing order, so the lane merges them: the
smaller position goes first, with the other side's value at that position its zero (its edge's offset); equal
positions go together. A result equal to the output's zero stays home on a sparse edge, except the lane's
last position (both sides always send it), which ends the image. A dense output has every position: there the
lane counts positions, and one that neither side sent is the sum of their zeros. The bits are those of
compiler/golden.py `add`.
"""
from dataclasses import dataclass

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.dense_unit import lane_positions
from undense.hw.event_dense import EVENT_BITS
from undense.hw.pe import event_layout

EVENTS = ("adds", "stream_in", "stream_out")  # counted with count_events, for the power model


@dataclass(frozen=True)
class AddParams:
    lanes: int
    features: int
    value_shapes: tuple[object, object]   # of a and b's event values
    offsets: tuple[int, int]              # the codes a and b's event values are relative to
    zero_points: tuple[int, int]
    multipliers: tuple[int, int]
    shift: int
    out_zero_point: int
    out_range: tuple[int, int]
    out_value_shape: object
    out_offset: int
    sparse_out: bool

    def layout(self, value_shape):
        return event_layout(lane_positions(self.features, self.lanes), value_shape)


class ElementwiseAdd(wiring.Component):
    def __init__(self, params: AddParams, count_events: bool = False):
        self.params = params
        self.count_events = count_events
        counters = {name: Out(EVENT_BITS) for name in EVENTS} if count_events else {}
        p = params
        super().__init__({"a": In(stream.Signature(p.layout(p.value_shapes[0]))).array(p.lanes),
                          "b": In(stream.Signature(p.layout(p.value_shapes[1]))).array(p.lanes),
                          "o": Out(stream.Signature(p.layout(p.out_value_shape))).array(p.lanes), **counters})

    def elaborate(self, platform):
        m = Module()
        strobes = [self.merge(m, lane) for lane in range(self.params.lanes)]
        if self.count_events:
            takes = sum(take for take, _ in strobes)
            sides = sum(sides for _, sides in strobes)
            sent = sum(o.valid & o.ready for o in self.o)
            m.d.sync += [self.adds.eq(self.adds + takes), self.stream_in.eq(self.stream_in + sides),
                         self.stream_out.eq(self.stream_out + sent)]
        return m

    def merge(self, m: Module, lane: int):
        """One lane's merge; returns the strobes of a position added and of the input events it took."""
        p = self.params
        a, b, o = self.a[lane], self.b[lane], self.o[lane]
        (za, zb), (ma, mb), (oa, ob) = p.zero_points, p.multipliers, p.offsets
        if p.sparse_out:
            position = Mux(a.payload.index <= b.payload.index, a.payload.index, b.payload.index)
        else:
            position = Signal.like(a.payload.index, name=f"position{lane}")
        first_a, first_b = a.payload.index == position, b.payload.index == position
        value_a = Mux(first_a, a.payload.value, 0)
        value_b = Mux(first_b, b.payload.value, 0)
        total = Signal(signed(len(a.payload.value) + len(b.payload.value) + 20), name=f"total{lane}")
        m.d.comb += total.eq((value_a - (za - oa)) * ma + (value_b - (zb - ob)) * mb)
        # rshift_round, half to even: the half bit, the bits below it (sticky) and the quotient's lowest bit
        half = total >> (p.shift - 1)
        sticky = total[:p.shift - 1].any() if p.shift > 1 else 0
        rounded = (half >> 1) + (half[0] & (sticky | half[1])) + p.out_zero_point
        low, high = p.out_range
        code = Mux(rounded < low, low, Mux(rounded > high, high, rounded))
        value = Signal(p.out_value_shape, name=f"value{lane}")
        m.d.comb += value.eq(code - p.out_offset)
        last = a.payload.last & b.payload.last & first_a & first_b
        keep = (value != 0) | last if p.sparse_out else 1
        take = Signal(name=f"take{lane}")
        m.d.comb += [take.eq((o.ready | ~o.valid) & a.valid & b.valid),
                     a.ready.eq(take & first_a), b.ready.eq(take & first_b)]
        with m.If(o.ready | ~o.valid):
            m.d.sync += o.valid.eq(take & keep)
            m.d.sync += [o.payload.index.eq(position), o.payload.value.eq(value), o.payload.last.eq(last)]
        if not p.sparse_out:
            with m.If(take):
                m.d.sync += position.eq(Mux(last, 0, position + 1))
        return take, (take & first_a) + (take & first_b)
