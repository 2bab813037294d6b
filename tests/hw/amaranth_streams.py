"""A stream's two ends on Amaranth's simulator, for unit tests as cocotbext-axi's sources and sinks are for
cocotb: a source that sends transfers with random idle cycles between them, and a sink that takes them under
random back-pressure, sampling at the clock edge."""
from collections.abc import Callable

import numpy as np
from amaranth.sim import Simulator


async def send(ctx, port, transfers: list, rng: np.random.Generator | None = None, gap: float = 0.0):
    """Each transfer onto `port` (a stream's input) in turn, each after idle cycles, one more with probability
    `gap` each time."""
    for transfer in transfers:
        ctx.set(port.valid, 0)
        while gap and rng.random() < gap:
            await ctx.tick()
        ctx.set(port.payload, transfer)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def take(ctx, port, rng: np.random.Generator, stall: float, done: Callable[[list], bool]) -> list:
    """The payloads taken from `port` (a stream's output), ready refused with probability `stall` each cycle,
    until `done` says they are all there."""
    received = []
    while not done(received):
        ready = bool(rng.random() >= stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)  # as at the edge
        if ready and valid:
            received.append(payload)
    return received


def run_through(unit, transfers: list, rng: np.random.Generator, gap: float, stall: float,
                done: Callable[[list], bool] | None = None) -> list:
    """`transfers` into the unit's `i` stream; what came out of its `o` stream, by default once as many
    transfers as went in."""
    received = []

    async def source(ctx):
        await send(ctx, unit.i, transfers, rng, gap)

    async def sink(ctx):
        received.extend(await take(ctx, unit.o, rng, stall, done or (lambda out: len(out) == len(transfers))))

    simulate(unit, source, sink)
    return received


def simulate(unit, background, foreground) -> None:
    """Runs `unit` on Amaranth's simulator, clocked, with two testbenches until `foreground` is done."""
    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(background, background=True)
    simulator.add_testbench(foreground)
    simulator.run()
