"""The accelerator's two ends, where dense codes meet event lanes.

`Indexer`: the input stream of codes, one a cycle, as events on one lane (every position, the last one marked).
`Packer`: the output layer's lanes (a dense edge: each group sends every row) as one stream of `lanes` codes a
transfer, in index order: transfer k holds rows k * lanes ... k * lanes + lanes - 1 (group g owns rows
i % lanes == g), the last transfer's missing rows zero. Each lane comes in through a register stage: the
groups that send them are spread over the chip, and the packer's `ready` goes back to all of them.
"""
from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.dense_unit import drain_cycles, positions
from undense.hw.pe import event_layout
from undense.hw.stream_register import StreamRegister


class Indexer(wiring.Component):
    def __init__(self, shape, features: int):
        self.features = features
        super().__init__({"i": In(stream.Signature(shape)),
                          "o": Out(stream.Signature(event_layout(features, shape)))})

    def elaborate(self, platform):
        m = Module()
        index = Signal(range(self.features))
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                     self.o.payload.index.eq(index), self.o.payload.value.eq(self.i.payload),
                     self.o.payload.last.eq(index == self.features - 1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += index.eq(Mux(index == self.features - 1, 0, index + 1))
        return m


class Packer(wiring.Component):
    def __init__(self, layout, features: int, lanes: int, code_bits: int):
        self.features, self.lanes, self.code_bits = features, lanes, code_bits
        super().__init__({"i": In(stream.Signature(layout)).array(lanes),
                          "o": Out(stream.Signature(unsigned(lanes * code_bits)))})

    def elaborate(self, platform):
        m = Module()
        lanes = []
        for index, lane in enumerate(self.i):
            m.submodules[f"lane{index}"] = register = StreamRegister(lane.payload.shape())
            wiring.connect(m, wiring.flipped(lane), register.i)
            lanes.append(register.o)
        steps = drain_cycles(self.features, self.lanes)
        step = Signal(range(steps))
        needed = [step < positions(self.features, self.lanes, lane) for lane in range(self.lanes)]
        present = Cat(lane.valid | ~need for lane, need in zip(lanes, needed, strict=True)).all()
        take = Signal()
        m.d.comb += take.eq(present & (self.o.ready | ~self.o.valid))
        for lane, need in zip(lanes, needed, strict=True):
            m.d.comb += lane.ready.eq(take & need)
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [self.o.valid.eq(present),
                         self.o.payload.eq(Cat(Mux(need, lane.payload.value, 0)[:self.code_bits]
                                               for lane, need in zip(lanes, needed, strict=True)))]
        with m.If(take):
            m.d.sync += step.eq(Mux(step == steps - 1, 0, step + 1))
        return m
