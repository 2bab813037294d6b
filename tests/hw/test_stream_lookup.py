"""StreamLookup on Amaranth's simulator: every transfer comes out once, in order, with the word its index looks
up, whatever the gaps at its input and the back-pressure at its output."""
import numpy as np
import pytest
from amaranth import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from undense.hw.stream_lookup import StreamLookup


@pytest.mark.parametrize("seed", range(4))
def test_each_transfer_leaves_once_with_its_word(seed):
    rng = np.random.default_rng(seed)
    words = [int(w) for w in rng.integers(0, 1 << 12, size=20)]
    layout = data.StructLayout({"index": unsigned(5), "tag": unsigned(8)})
    lookup = StreamLookup(layout, unsigned(12), words)
    sent = [{"index": int(i), "tag": tag} for tag, i in enumerate(rng.integers(0, len(words), size=60))]
    received = []

    async def feed(ctx):
        for transfer in sent:
            ctx.set(lookup.i.valid, 0)
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
            ctx.set(lookup.i.payload, transfer)
            ctx.set(lookup.i.valid, 1)
            await ctx.tick().until(lookup.i.ready)
        ctx.set(lookup.i.valid, 0)

    async def take(ctx):
        while len(received) < len(sent):
            ready = bool(rng.random() < 0.6)
            ctx.set(lookup.o.ready, ready)
            if ready and ctx.get(lookup.o.valid):  # taken at the coming edge
                payload = ctx.get(lookup.o.payload)
                received.append((payload.event.index, payload.event.tag, payload.found))
            await ctx.tick()

    simulator = Simulator(lookup)
    simulator.add_clock(1e-8)
    simulator.add_testbench(feed, background=True)
    simulator.add_testbench(take)
    simulator.run()
    assert received == [(t["index"], t["tag"], words[t["index"]]) for t in sent]
