"""The requantizer and the elementwise Add on Amaranth's simulator, against the golden rule (numbers.rshift_round,
half to even), with power-of-two multipliers so that ties, where half to even and half up differ, are common."""
import numpy as np
from amaranth import signed, unsigned
from amaranth.sim import Simulator

from undense.compiler.numbers import rshift_round
from undense.hw.elementwise import AddParams, ElementwiseAdd
from undense.hw.requantizer import Requantizer, RequantParams


def simulate(unit, bench):
    simulator = Simulator(unit)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()


def test_requantizer_rounds_half_to_even():
    rng = np.random.default_rng(0)
    count, zero_point, clamp = 600, -3, (-128, 127)
    acc = rng.integers(-250, 250, count)
    bias = rng.integers(-50, 50, count)
    # 2^14 / 2^(14 + k): v / 2^k, a tie whenever v is an odd multiple of 2^(k-1); and some other multipliers
    multiplier = np.where(rng.random(count) < 0.7, 1 << 14, rng.integers(1 << 14, 1 << 15, count))
    shift = 14 + rng.integers(1, 5, count)
    params = RequantParams(acc_bits=13, out_shape=signed(8), shift_bits=2, shift_base=14, zero_point=zero_point,
                           clamp=clamp)
    requantizer = Requantizer(params)
    expected = np.clip(zero_point + rshift_round((acc + bias) * multiplier, shift), *clamp)
    assert np.mean(expected != np.clip(zero_point + (((acc + bias) * multiplier + (1 << (shift - 1))) >> shift),
                                       *clamp)) > 0.03  # ties are common here: half up would fail
    codes = []

    async def bench(ctx):
        for index in range(count + 8):
            feeding = index < count
            ctx.set(requantizer.i.valid, feeding)
            if feeding:
                ctx.set(requantizer.i.payload, {
                    "acc": int(acc[index]), "row": {"bias": int(bias[index]), "multiplier": int(multiplier[index]),
                                                    "shift": params.stored_shift(int(shift[index]))}})
            await ctx.tick()
            if ctx.get(requantizer.o.valid):
                codes.append(ctx.get(requantizer.o.payload))

    simulate(requantizer, bench)
    np.testing.assert_array_equal(codes, expected)


def test_elementwise_add_rounds_half_to_even():
    rng = np.random.default_rng(1)
    count = 300
    a, b = rng.integers(0, 256, count), rng.integers(-128, 128, count)
    zero_points, multipliers, shift, out_zero_point = (7, -5), (1 << 14, 3 << 13), 16, 2
    add = ElementwiseAdd(AddParams(1, count, (unsigned(8), signed(8)), (0, 0), zero_points, multipliers, shift,
                                   out_zero_point, (-128, 127), signed(8), 0, sparse_out=False))
    total = (a - zero_points[0]) * multipliers[0] + (b - zero_points[1]) * multipliers[1]
    expected = np.clip(out_zero_point + rshift_round(total, shift), -128, 127)
    codes = []

    async def bench(ctx):
        ctx.set(add.o[0].ready, 1)
        for index in range(count + 2):
            feeding = index < count
            ctx.set(add.a[0].valid, feeding)
            ctx.set(add.b[0].valid, feeding)
            if feeding:
                last = int(index == count - 1)
                ctx.set(add.a[0].payload, {"index": index, "value": int(a[index]), "last": last})
                ctx.set(add.b[0].payload, {"index": index, "value": int(b[index]), "last": last})
            await ctx.tick()
            if ctx.get(add.o[0].valid):
                codes.append(ctx.get(add.o[0].payload.value))

    simulate(add, bench)
    np.testing.assert_array_equal(codes, expected)
