"""A stream stage that looks each transfer's `index` up in a ROM and sends the transfer on with the word found.

The ROM is read synchronously, as a block RAM reads, so the word arrives a cycle after its address: the stage
holds one transfer, and while its output waits the ROM's read is disabled, which holds the word. A convolution's
PE looks up each event's origin in the output map this way (hw/pe.py): a table as deep as its lane's positions is
too big for the logic a table read in the cycle of its address would need.
"""
from amaranth import Module
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
        event = data_register(self.i.payload.shape(), "event")
        m.d.comb += [read.addr.eq(self.i.payload.index), read.en.eq(advance), self.i.ready.eq(advance),
                     self.o.payload.event.eq(event), self.o.payload.found.eq(read.data)]
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(self.i.valid), event.eq(self.i.payload)]
        return m
