"""A stream FIFO whose storage is a memory pinned where the compiler's resource estimate puts it.

Amaranth's own SyncFIFOBuffered leaves its memory to Yosys's choice (block RAM on iCE40, even for a few
words); this one takes the placement as a parameter, so the estimate is exact by construction. Like
SyncFIFOBuffered it holds `depth` values: depth - 1 in the memory and one in the output register.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.resources import yosys_attrs


class StreamFIFO(wiring.Component):
    def __init__(self, shape, depth: int, style: str | None = None):
        self.depth, self.style = depth, style
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                          "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        size = self.depth - 1
        m.submodules.storage = storage = Memory(shape=self.i.payload.shape(), depth=size, init=[],
                                                attrs=yosys_attrs(self.style))
        write, read = storage.write_port(), storage.read_port()
        head, tail, stored = Signal(range(size)), Signal(range(size)), Signal(range(size + 1))

        push = Signal()
        m.d.comb += [self.i.ready.eq(stored < size), push.eq(self.i.valid & self.i.ready),
                     write.addr.eq(tail), write.data.eq(self.i.payload), write.en.eq(push)]
        with m.If(push):
            m.d.sync += tail.eq(following(tail, size))

        # the output register is the read port's: a value popped this cycle is on o.payload the next
        pop = Signal()
        m.d.comb += [pop.eq((stored != 0) & (~self.o.valid | self.o.ready)),
                     read.addr.eq(head), read.en.eq(pop), self.o.payload.eq(read.data)]
        with m.If(pop):
            m.d.sync += [head.eq(following(head, size)), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += stored.eq(stored + push - pop)
        m.d.comb += self.level.eq(stored + self.o.valid)
        return m


def following(index, size: int):
    """The next position of a ring of `size`."""
    return Mux(index == size - 1, 0, index + 1)
