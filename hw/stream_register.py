"""A register stage on a stream that registers both ways: payload and valid forward, ready backward.

A plain register stage passes `ready` through as logic, so a stall travels back through every stage in one
cycle, across the chip when the stages are spread over it. This one (a skid buffer) drives `i.ready` from a
register: when the output stalls, the value that arrives in the same cycle waits in a second register, the skid,
and the input is told to stop a cycle later. Full throughput, one cycle of latency.

The top level puts one on its ports, so they drive only registers, and one wherever a stream fans out to many
consumers or in from far away (forks, the output packer), so their `ready` does not cross the chip as logic.
"""
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.registers import data_register


class StreamRegister(wiring.Component):
    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = data_register(self.i.payload.shape(), "skid")
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
