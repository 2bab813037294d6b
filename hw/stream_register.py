"""A register stage on a stream: one cycle of latency, full throughput.

The top level puts one on its input and its output, so the accelerator's ports drive only registers:
clean timing at the chip's edge, and in simulation the logic that depends on the ports is tiny.
"""
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamRegister(wiring.Component):
    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        return m
