"""A stream stage that looks each transfer's `index` up in a ROM and sends the transfer on with the word found.

The ROM is read synchronously, as a block RAM reads, so the word arrives a cycle after its address, and it goes
straight into a register of its own, a cycle later still: the stage is a pipeline of two, and while its output
waits neither moves (the ROM's read is disabled, which holds the word). A block RAM's output is slow (5.6 ns on
an ECP5 without its output register) and the RAM may sit anywhere on a chip whose block RAMs are nearly all in
use: read straight into logic, or into a register behind a multiplexer, it was the 28x28 generator's critical
path on the 85F (10.96 ns). A register whose only input is the word, enabled as the pipeline moves, is a
flip-flop with a clock enable that the placer puts beside the RAM. A convolution's lane looks up each event's
origin in the output map this way (hw/event_dense.py): a table as deep as its lane's positions is too big for
the logic a table read in the cycle of its address would need.
"""
from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.hw.registers import data_register


def found_layout(in_layout, word_shape) -> data.StructLayout:
    return data.StructLayout({"event": in_layout, "found": word_shape})


class StreamLookup(wiring.Component):
    def __init__(self, in_layout, word_shape, words: list, attrs: dict | None = None):
        self.word_shape, self.words, self.attrs = word_shape, words, attrs or {}
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(found_layout(in_layout, word_shape)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = Memory(shape=self.word_shape, depth=len(self.words), init=self.words,
                                            attrs=self.attrs)
        read = table.read_port()
        advance = ~self.o.valid | self.o.ready
        reading = Signal()  # a transfer whose word the ROM is reading
        read_event = data_register(self.i.payload.shape(), "read_event")
        event, found = data_register(self.i.payload.shape(), "event"), data_register(self.word_shape, "found")
        m.d.comb += [read.addr.eq(self.i.payload.index), read.en.eq(advance), self.i.ready.eq(advance),
                     self.o.payload.event.eq(event), self.o.payload.found.eq(found)]
        with m.If(advance):
            m.d.sync += [reading.eq(self.i.valid), read_event.eq(self.i.payload),
                         self.o.valid.eq(reading), event.eq(read_event), found.eq(read.data)]
        return m
