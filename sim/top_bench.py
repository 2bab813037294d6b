"""The shipped cocotb bench of a compiled model's top level, which `undense cocotb DIR` runs: every input
image streamed in with random gaps, the outputs taken under random back-pressure, every output code compared
with golden's bit for bit.
"""
import cocotb

from undense.sim import testbench

INPUT_GAP = 0.3  # share of the cycles the input stream leaves empty
OUTPUT_STALL = 0.4  # share of the cycles the output stream is not ready


@cocotb.test()
async def matches_golden(dut):
    """All the images the command chose, back to back through the pipeline, equal to golden bit for bit."""
    bench = await testbench.start(dut)
    sink = bench.sink(stall=OUTPUT_STALL)
    cocotb.start_soon(bench.source(gap=INPUT_GAP).send(bench.inputs.reshape(-1)))
    images = len(bench.inputs)
    outputs = await bench.collect(sink, images)
    bench.record(images=images, outputs=int(outputs.size), cycles=bench.cycles,
                 weight_load_cycles=bench.weight_load_cycles, input_gap=INPUT_GAP, output_stall=OUTPUT_STALL)
    bench.check(outputs)
