"""What a cocotb bench of a compiled model needs, inside the simulator: `undense cocotb DIR --bench FILE.py`
runs the bench on DIR's accelerator, and `await testbench.start(dut)` gives it the model, the inputs the
command chose (-n, --seed), golden's codes for every tensor, drivers for the top level's streams, and a
design out of reset with its weights loaded.

    import cocotb
    from undense.sim import testbench

    @cocotb.test()
    async def first_image(dut):
        bench = await testbench.start(dut)
        sink = bench.sink(stall=0.3)
        await bench.source(gap=0.2).send(bench.inputs[0])
        outputs = await bench.collect(sink, images=1)
        bench.check(outputs)

The shipped bench (sim/top_bench.py) is written with it. The command hands the case over in a JSON file
named by $UNDENSE_BENCH_CASE (write_case owns its keys).
"""
import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First
from cocotb.utils import get_sim_time

from undense.compiler import builddir, golden
from undense.errors import UndenseError
from undense.hw.top import code_shape, output_lanes
from undense.sim.simulate import BUDGET_FACTOR
from undense.sim.streams import StreamSink, StreamSource

CASE_ENV = "UNDENSE_BENCH_CASE"
CLOCK_NS = 10
RESET_CYCLES = 3


def write_case(path: Path, build_dir: Path, inputs: np.ndarray, weights: Path | None, figures: Path,
               seed: int) -> Path:
    """The case file a bench reads: the build dir, the input codes (saved beside it as .npy), the bytes for the
    weight port (None without one), where figures go, and the seed of the drivers' gaps and stalls."""
    path = Path(path)
    np.save(path.with_suffix(".npy"), np.asarray(inputs, dtype=np.int64))
    path.write_text(json.dumps({"build_dir": str(Path(build_dir).resolve()),
                                "inputs": str(path.with_suffix(".npy").resolve()),
                                "weights": None if weights is None else str(Path(weights).resolve()),
                                "figures": str(Path(figures).resolve()), "seed": seed}, indent=2))
    return path


class Bench:
    """One run of a bench on a compiled model's top level (`dut`).

    graph, target, report, directory: the build dir's model, its target, compile.json and where it lives;
    inputs: the input codes the command chose, [images, features] (send a row as one image on `i`);
    golden: every tensor's golden codes for those inputs, {tensor: [images, features]};
    expected: golden's output codes, [images, outputs_per_image], as they leave on `o`;
    output_layer: the layer whose output leaves on `o`.
    """

    def __init__(self, dut, case: dict):
        self.dut = dut
        self.directory = Path(case["build_dir"])
        self.graph, self.target, self.report = builddir.read(self.directory)
        self.inputs = np.load(case["inputs"])
        self.golden = golden.run_codes(self.graph, self.inputs)
        self.expected = self.golden[self.graph.output]
        self.outputs_per_image = self.expected.shape[1]
        self.output_layer = next(node.name for node in self.graph.nodes if node.output == self.graph.output)
        self.weight_load_cycles = 0
        self._case = case
        self._seeds = random.Random(case["seed"])
        self._started_ns = 0.0

    def layer_golden(self, layer: str) -> np.ndarray:
        """Golden's output codes of the layer named `layer` (its ONNX name), [images, features]."""
        for node in self.graph.nodes:
            if node.name == layer:
                return self.golden[node.output]
        raise UndenseError(f"no layer '{layer}' in {self.directory}; its layers: "
                           f"{', '.join(node.name for node in self.graph.nodes)}")

    def source(self, gap: float = 0.0) -> StreamSource:
        """A driver for the input stream `i`, leaving a random share `gap` of the cycles empty."""
        return StreamSource(self.dut, "i", self.dut.clk, gap=gap, seed=self._seeds.randrange(2**32))

    def sink(self, stall: float = 0.0) -> StreamSink:
        """A running monitor of the output stream `o`, dropping ready for a random share `stall` of the cycles;
        its `values` are the output codes in the order they left."""
        last = self.graph.nodes[-1]
        shape = code_shape(self.graph.quant[self.graph.output], getattr(last, "acc_bits", 0))
        sink = StreamSink(self.dut, "o", self.dut.clk, stall=stall, seed=self._seeds.randrange(2**32),
                          signed=shape.signed, lanes=output_lanes(self.graph), bits=shape.width,
                          per_image=self.outputs_per_image)
        cocotb.start_soon(sink.run())
        return sink

    @property
    def cycles(self) -> int:
        """Clock cycles since the design was out of reset with its weights loaded."""
        return round((get_sim_time("ns") - self._started_ns) / CLOCK_NS)

    async def collect(self, sink: StreamSink, images: int) -> np.ndarray:
        """The first `images` images' outputs from `sink`, [images, outputs_per_image], once they have all left;
        fails the test if they take longer than 8x the compiler's prediction (a hang)."""
        count = images * self.outputs_per_image
        predicted = self.report.get("predicted_cycles_per_image") or max(n.fold.cycles for n in self.graph.nodes)
        budget = int(BUDGET_FACTOR * predicted * (images + 2 * len(self.graph.nodes))) + 10_000
        waiting = cocotb.start_soon(sink.wait_for(count))
        await First(waiting, ClockCycles(self.dut.clk, budget))
        if len(sink.values) < count:
            waiting.cancel()
            raise AssertionError(f"only {len(sink.values)} of {count} outputs ({images} images) left `o` within "
                                 f"{budget:,} cycles, 8x the compiler's prediction: the design stalled, or it was "
                                 "sent fewer images")
        return np.array(sink.values[:count], dtype=np.int64).reshape(images, self.outputs_per_image)

    def check(self, outputs) -> None:
        """Fails the test at the first output code that differs from golden's, naming the image, the index in the
        output and the layer that made it, with both values. `outputs`: codes in the order they left `o`, from the
        first image on (a whole number of images or not)."""
        try:
            got = np.asarray(outputs, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise UndenseError(f"check() takes output codes (integers), not {type(outputs).__name__}") from None
        want = self.expected.reshape(-1)
        if got.size > want.size:
            raise AssertionError(f"{got.size} outputs to check; golden has {want.size} ({len(self.expected)} images)")
        wrong = np.flatnonzero(got != want[:got.size])
        if wrong.size:
            first = int(wrong[0])
            image, index = divmod(first, self.outputs_per_image)
            raise AssertionError(f"image {image}, output {index} of layer '{self.output_layer}': RTL {got[first]}, "
                                 f"golden {want[first]} ({wrong.size} of {got.size} outputs differ)")

    def record(self, **figures) -> None:
        """Figures for `undense cocotb` to print and keep in DIR/cocotb.json (numbers or short strings; anything
        else is kept as its text)."""
        path = Path(self._case["figures"])
        kept = json.loads(path.read_text()) if path.is_file() else {}
        kept.update({name: value.item() if isinstance(value, np.generic) else value for name, value in figures.items()})
        path.write_text(json.dumps(kept, indent=2, default=str))

    async def _start(self) -> None:
        dut = self.dut
        weights = self._case["weights"]
        for port in ("i", "w") if weights is not None else ("i",):  # no X into the design (Icarus keeps them)
            getattr(dut, f"{port}__valid").value = 0
            getattr(dut, f"{port}__payload").value = 0
        dut.o__ready.value = 0
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        dut.rst.value = 1
        await ClockCycles(dut.clk, RESET_CYCLES)
        dut.rst.value = 0
        if weights is not None:
            started = get_sim_time("ns")
            await StreamSource(dut, "w", dut.clk).send(Path(weights).read_bytes())
            self.weight_load_cycles = round((get_sim_time("ns") - started) / CLOCK_NS)
        self._started_ns = get_sim_time("ns")


def read_case() -> dict:
    """The case `undense cocotb` wrote for this run."""
    if CASE_ENV not in os.environ:
        raise RuntimeError(f"${CASE_ENV} is not set: run the bench with `undense cocotb DIR --bench FILE.py`")
    return json.loads(Path(os.environ[CASE_ENV]).read_text())


async def start(dut) -> Bench:
    """Starts the clock (10 ns), holds reset for 3 cycles, sends DIR/rtl/weights.bin through the weight port `w`
    where the design has one (iCE40 UP5K), and returns the Bench of this run."""
    bench = Bench(dut, read_case())
    await bench._start()
    return bench
