"""Reusable cocotb drivers for amaranth.lib.stream ports (valid/ready/payload), in the style of cocotbext-axi.

Right after `await RisingEdge(clk)` the signals read as they were at that edge, so `valid & ready` there
is a transfer. A value just written reads back unchanged until the next step: driver state is kept in
Python, never read back from the signals.
"""
import random

from cocotb.triggers import Event, RisingEdge


class StreamSource:
    """Drives `<prefix>__valid/__payload`, leaving random gaps (a share `gap` of the cycles) between values."""

    def __init__(self, dut, prefix: str, clk, gap: float = 0.0, seed: int = 0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk, self.gap, self.rng = clk, gap, random.Random(seed)
        self.valid.value = 0

    async def send(self, values):
        for value in values:
            while self.rng.random() < self.gap:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.payload.value, self.valid.value = int(value), 1
            await RisingEdge(self.clk)
            while not self.ready.value:  # held until the edge at which ready is high
                await RisingEdge(self.clk)
        self.valid.value = 0


class StreamSink:
    """Collects `<prefix>__payload` on every transfer, dropping ready for a share `stall` of the cycles.

    A transfer may carry `lanes` values of `bits` each, the first in the low bits; of an image's `per_image`
    values, its last transfer carries what is left and padding. `wait_for(count)` returns once `count` values
    have arrived.
    """

    def __init__(self, dut, prefix: str, clk, stall: float = 0.0, seed: int = 1, signed: bool = True,
                 lanes: int = 1, bits: int = 0, per_image: int = 1):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk, self.stall, self.rng, self.signed = clk, stall, random.Random(seed), signed
        self.lanes, self.bits, self.per_image = lanes, bits, per_image
        self.transfers = 0
        self.values: list[int] = []
        self._wanted, self._arrived = None, Event()

    async def run(self):
        self.ready.value = 0
        while True:
            await RisingEdge(self.clk)
            if self.valid.value and self.ready.value:
                self.values += self.unpack(self.payload.value)
                if self._wanted is not None and len(self.values) >= self._wanted:
                    self._arrived.set()
            self.ready.value = int(self.rng.random() >= self.stall)

    def unpack(self, value) -> list[int]:
        if self.lanes == 1:
            return [value.to_signed() if self.signed else value.to_unsigned()]
        word, mask = value.to_unsigned(), (1 << self.bits) - 1
        step = self.transfers % -(-self.per_image // self.lanes)
        self.transfers += 1
        codes = [(word >> (lane * self.bits)) & mask for lane in range(self.lanes)
                 if step * self.lanes + lane < self.per_image]
        half = 1 << (self.bits - 1)
        return [code - 2 * half if self.signed and code >= half else code for code in codes]

    async def wait_for(self, count: int):
        self._wanted = count
        if len(self.values) < count:
            await self._arrived.wait()
