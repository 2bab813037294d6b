"""The weight loader on Amaranth's simulator: bytes in, each word written once, memory by memory, in order."""
import numpy as np
from amaranth.sim import Simulator

from undense.hw.weight_loader import WeightLoader, load_bytes


def test_words_fill_the_memories_in_order_then_done():
    depths, width = [3, 2], 17  # three bytes a word
    words = [int(w) for w in np.random.default_rng(1).integers(0, 1 << width, size=sum(depths))]
    loader = WeightLoader(depths, width)
    writes = []

    async def bench(ctx):
        for index, byte in enumerate(load_bytes(words, width)):
            ctx.set(loader.i.payload, byte)
            ctx.set(loader.i.valid, index % 4 != 3)  # a gap every fourth cycle: nothing may be written then
            await ctx.tick()
            if index % 4 == 3:
                ctx.set(loader.i.valid, 1)
                await ctx.tick()
        ctx.set(loader.i.valid, 0)
        await ctx.tick()
        assert ctx.get(loader.done) and not ctx.get(loader.i.ready)

    async def monitor(ctx):
        async for _, _, en, addr, data in ctx.tick().sample(loader.en, loader.addr, loader.data):
            if en:
                writes.append((en, addr, data))

    simulator = Simulator(loader)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.add_process(monitor)
    simulator.run_until(1e-3)
    expected = [(0b01, 0, words[0]), (0b01, 1, words[1]), (0b01, 2, words[2]), (0b10, 0, words[3]),
                (0b10, 1, words[4])]
    assert writes == expected


def test_load_bytes_are_little_endian_and_whole_words():
    assert load_bytes([0x1_2345, 0x0_0001], 17) == bytes([0x45, 0x23, 0x01, 0x01, 0x00, 0x00])
    assert load_bytes([0xAB], 8) == bytes([0xAB])
