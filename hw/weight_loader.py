"""Fills the weight memories that the bitstream cannot initialise (the iCE40 UP5K's SPRAM) from a byte stream.

A byte port keeps the accelerator within a small package's pins and takes what a SPI flash or a UART delivers.
Each memory word arrives as `ceil(width / 8)` bytes, least significant first; the words come in a fixed order:
every entry of memory 0, then of memory 1, and so on (hw/top.py lists the memories and their words). `done`
rises after the last word and stays high; the accelerator takes no image before that.
"""
from math import ceil

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.compiler.numbers import index_bits

LOAD_PORT_BITS = 8


def load_bytes(words: list[int], width: int) -> bytes:
    """The bytes that load `words` of `width` bits through the port."""
    return b"".join(word.to_bytes(ceil(width / LOAD_PORT_BITS), "little") for word in words)


class WeightLoader(wiring.Component):
    def __init__(self, depths: list[int], width: int):
        self.depths = depths
        self.width = width
        super().__init__({
            "i": In(stream.Signature(LOAD_PORT_BITS)),
            "addr": Out(max(index_bits(depth) for depth in depths)),
            "data": Out(width),
            "en": Out(len(depths)),  # the memory `addr` and `data` are written into this cycle
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        per_word = ceil(self.width / LOAD_PORT_BITS)
        fire = Signal()
        m.d.comb += [self.i.ready.eq(~self.done), fire.eq(self.i.valid & self.i.ready)]

        # the bytes of a word, shifted in from the top: after the last one the first is at the bottom
        earlier, byte = Signal(LOAD_PORT_BITS * (per_word - 1)), Signal(range(per_word))
        assembled = Cat(earlier, self.i.payload)
        word_done = Signal()
        m.d.comb += [word_done.eq(fire & (byte == per_word - 1)), self.data.eq(assembled[:self.width])]
        if per_word > 1:
            with m.If(fire):
                m.d.sync += [earlier.eq(assembled[LOAD_PORT_BITS:]), byte.eq(Mux(word_done, 0, byte + 1))]

        current = Signal(len(self.depths), init=1)  # one-hot: the memory being filled
        at_end = Signal()  # this word is the last of the current memory
        m.d.comb += [at_end.eq(Cat(current[k] & (self.addr == depth - 1) for k, depth in enumerate(self.depths)).any()),
                     self.en.eq(Mux(word_done, current, 0))]
        with m.If(word_done):
            m.d.sync += self.addr.eq(Mux(at_end, 0, self.addr + 1))
            with m.If(at_end):
                m.d.sync += [current.eq(Cat(0, current[:-1])), self.done.eq(current[-1])]
        return m
