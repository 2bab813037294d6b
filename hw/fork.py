"""Broadcast one stream to several consumers: each takes the value when it is ready; the input moves on
once every consumer has it. An output's valid never depends on any ready, as amaranth.lib.stream asks."""
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamFork(wiring.Component):
    def __init__(self, shape, count: int):
        self.count = count
        super().__init__({"i": In(stream.Signature(shape)),
                          **{f"o{index}": Out(stream.Signature(shape)) for index in range(count)}})

    def elaborate(self, platform):
        m = Module()
        outputs = [getattr(self, f"o{index}") for index in range(self.count)]
        taken = [Signal(name=f"taken{index}") for index in range(self.count)]  # has this value already
        served = [t | o.ready for t, o in zip(taken, outputs, strict=True)]
        everyone = served[0]
        for more in served[1:]:
            everyone = everyone & more
        m.d.comb += self.i.ready.eq(everyone)
        for output, has in zip(outputs, taken, strict=True):
            m.d.comb += [output.payload.eq(self.i.payload), output.valid.eq(self.i.valid & ~has)]
            with m.If(self.i.valid & everyone):
                m.d.sync += has.eq(0)
            with m.Elif(output.valid & output.ready):
                m.d.sync += has.eq(1)
        return m
