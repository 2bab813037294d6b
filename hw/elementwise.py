"""Elementwise Add of two streams, requantized: out = clamp(zp + rshift_round((a - za) * Ma + (b - zb) * Mb, s)).

One value a cycle; both inputs are taken together. The bits are those of compiler/golden.py `add`.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.sparse_mvau import EVENT_BITS

EVENTS = ("adds", "stream_in", "stream_out")  # counted with count_events, for the power model


class ElementwiseAdd(wiring.Component):
    def __init__(self, a_shape, b_shape, out_shape, zero_points: tuple[int, int], multipliers: tuple[int, int],
                 shift: int, out_zero_point: int, out_range: tuple[int, int], count_events: bool = False):
        self.zero_points, self.multipliers, self.shift = zero_points, multipliers, shift
        self.out_zero_point, self.out_range = out_zero_point, out_range
        self.count_events = count_events
        counters = {name: Out(EVENT_BITS) for name in EVENTS} if count_events else {}
        super().__init__({"a": In(stream.Signature(a_shape)), "b": In(stream.Signature(b_shape)),
                          "o": Out(stream.Signature(out_shape)), **counters})

    def elaborate(self, platform):
        m = Module()
        (za, zb), (ma, mb) = self.zero_points, self.multipliers
        total = Signal(signed(len(self.a.payload) + len(self.b.payload) + 20))
        m.d.comb += total.eq((self.a.payload - za) * ma + (self.b.payload - zb) * mb)
        # rshift_round, half to even: the half bit, the bits below it (sticky) and the quotient's lowest bit
        half = total >> (self.shift - 1)
        sticky = total[:self.shift - 1].any() if self.shift > 1 else 0
        rounded = (half >> 1) + (half[0] & (sticky | half[1])) + self.out_zero_point
        low, high = self.out_range
        take = Signal()
        m.d.comb += [take.eq((self.o.ready | ~self.o.valid) & self.a.valid & self.b.valid),
                     self.a.ready.eq(take), self.b.ready.eq(take)]
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += self.o.valid.eq(self.a.valid & self.b.valid)
            m.d.sync += self.o.payload.eq(Mux(rounded < low, low, Mux(rounded > high, high, rounded)))
        if self.count_events:
            sent = self.o.valid & self.o.ready
            m.d.sync += [self.adds.eq(self.adds + take), self.stream_in.eq(self.stream_in + 2 * take),
                         self.stream_out.eq(self.stream_out + sent)]
        return m
