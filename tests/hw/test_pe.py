"""One processing element on Amaranth's simulator: its rows' sums equal numpy's, whatever the order of its rows
(a row met again one, two or three entries later takes the sum not yet written back), image after image through
both banks, with the drain stalling the input, and after an image shorter than the PE's pipeline; with the banks'
reads registered (block RAM) as without, and with the banks split by width. A read that meets a write of its row
in the same cycle gets the old data in Amaranth's simulation; the PE must not use it (its banks are synthesized
with `no_rw_check`), so it also runs with banks that read the new data then."""
import numpy as np
import pytest
from amaranth import signed
from amaranth.lib.memory import Memory
from amaranth_streams import send, simulate

from undense.hw import pe as pe_module
from undense.hw.dense_unit import block
from undense.hw.pe import PEParams, ProcessingElement


class WriteFirstMemory(Memory):
    """A memory whose reads see a write of the same cycle to their row (one way a block RAM answers)."""

    def read_port(self, **options):
        return super().read_port(transparent_for=self.write_ports, **options)


def pe_sums(codes: np.ndarray, images: list[list[tuple[int, int]]], registered: bool,
            slice_bits: int) -> list[np.ndarray]:
    """Run `images` (each a list of (column, value) events) through a PE holding all of `codes` (rows, columns);
    each image's row sums, as the drain reads them."""
    part = block(codes, 1, 1, 0, 0)
    params = PEParams(part, codes.shape[1], codes.shape[1], signed(9), 8, 20, registered_reads=registered,
                      acc_slice_bits=slice_bits)
    pe = ProcessingElement(params)
    drain_latency = params.shape().drain_latency - 1  # the layer's command register is not the PE's
    sums = []

    async def feed(ctx):
        await send(ctx, pe.i, [{"index": column, "value": value, "last": index == len(events) - 1}
                               for events in images for index, (column, value) in enumerate(events)])

    async def drain(ctx):
        for image in range(len(images)):
            bank = image % 2
            await ctx.tick().until(pe.full.bit_select(bank, 1))
            rows = []
            for row in range(part.rows + drain_latency):
                ctx.set(pe.drain_en, row < part.rows)
                ctx.set(pe.drain_bank, bank)
                ctx.set(pe.drain_addr, min(row, part.rows - 1))
                await ctx.tick()
                if row >= drain_latency - 1 and len(rows) < part.rows:
                    rows.append(ctx.get(pe.drain_data))
            ctx.set(pe.release, 1 << bank)
            await ctx.tick()
            ctx.set(pe.release, 0)
            sums.append(np.array(rows))

    simulate(pe, feed, drain)
    return sums


def expected_sums(codes: np.ndarray, events: list[tuple[int, int]]) -> np.ndarray:
    return sum((codes[:, column] * value for column, value in events), np.zeros(codes.shape[0], dtype=np.int64))


@pytest.mark.parametrize("registered,slice_bits,collision", [
    (False, 0, "old"), (True, 0, "old"), (True, 7, "old"),  # 7: 20-bit sums in 3 RAMs
    (False, 0, "new"), (True, 7, "new")])
@pytest.mark.parametrize("rows,seed", [(1, 0), (2, 1), (3, 2), (4, 4), (5, 3)])
def test_rows_met_again_soon_sum_exactly(rows, seed, registered, slice_bits, collision, monkeypatch):
    """Few rows, so that entries of the same row follow one another at every distance."""
    if collision == "new":
        monkeypatch.setattr(pe_module, "Memory", WriteFirstMemory)
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, size=(rows, 6)) * (rng.random((rows, 6)) < 0.7)
    codes[:, 0] = 0   # an empty column: one zero entry
    codes[:, 1] = [-128, *[127] * (rows - 1)]  # both ends of the weights' range
    images = [[(int(c), int(v)) for c, v in zip(rng.integers(0, 6, size=12), rng.integers(-256, 256, size=12),
                                                strict=True)] for _ in range(3)]
    images[0] += [(1, -256), (1, 255), (1, -256)]  # both ends of the values' range, the same column in a row
    images.insert(1, [(2, 5)])  # an image shorter than the pipeline: the next comes back to a bank still filling
    for got, events in zip(pe_sums(codes, images, registered, slice_bits), images, strict=True):
        assert got.tolist() == expected_sums(codes, events).tolist()
