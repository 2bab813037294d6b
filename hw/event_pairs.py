"""Weight reuse in a convolution's lane: two events of one channel and one row travel as one, so that each of
the channel's taps is read from a PE's weight memory once for both.

A convolution's input event meets every tap of its channel (hw/conv_unit.py), whatever its position. The lane's
events of one channel and one map row come one after another (its positions are in runs of a channel, or of a
row's channels), so the stage after the lane's lookup holds each event back until the next one arrives and, where
the next is of the same channel and row, both nonzero and the held one not its image's last, sends them on
together: the next as the event, the held one's value and column as its `first`. The PE issues each entry for
the first, then again for the event itself, its memory not read again (hw/pe.py): the same cycles, half the
weight reads, one event read from the queue instead of two.

Greedy, in arrival order: a run of k such events goes as k // 2 pairs (and one event alone where k is odd), which
is what the golden executor counts (pairs()). Holding an event back until the next arrives cannot stall the lane
for good: the next always comes, for an event that pairs is not its row's last (a row's end, sent to every lane,
follows), and the events before it have all gone on. The output is registered.
"""
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.registers import data_register


def pairable(held, event):
    """Whether `event`, arriving after `held`, travels with it."""
    return ((event.index == held.index) & (event.origin.y == held.origin.y) & held.value.any() & event.value.any()
            & ~held.last)


class EventPairs(wiring.Component):
    def __init__(self, in_layout, out_layout):
        super().__init__({"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))})

    def elaborate(self, platform):
        m = Module()
        held, holding = data_register(self.i.payload.shape(), "held"), Signal(name="holding")
        # the held event may pair (nonzero, not its image's last): it goes on with the next, or alone before it.
        # Derivable from `held`, but registered as it is taken, so that the choice below waits on no test of it
        waits = Signal(name="held_waits")
        out_free = ~self.o.valid | self.o.ready
        event = self.i.payload
        m.d.comb += self.i.ready.eq(~holding | out_free)
        with m.If(out_free):
            m.d.sync += self.o.valid.eq(0)

        def send(last, first=None):
            fields = [self.o.valid.eq(1)] + [getattr(self.o.payload, name).eq(getattr(last, name))
                                              for name in ("index", "value", "last", "origin")]
            if first is not None:
                fields += [self.o.payload.first.value.eq(first.value), self.o.payload.first.x.eq(first.origin.x)]
            return fields + [self.o.payload.paired.eq(first is not None)]

        def hold():
            return [held.eq(event), holding.eq(1), waits.eq(event.value.any() & ~event.last)]

        with m.If(holding & out_free):
            with m.If(self.i.valid & waits & pairable(held, event)):
                m.d.sync += [*send(event, held), holding.eq(0)]
            with m.Elif(self.i.valid):
                m.d.sync += [*send(held), *hold()]
            with m.Elif(~waits):
                m.d.sync += [*send(held), holding.eq(0)]
        with m.Elif(~holding & self.i.valid):
            m.d.sync += hold()
        return m

