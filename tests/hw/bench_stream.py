"""cocotb bench for any undense stream unit: streams the inputs of a JSON case in, compares every output
with golden's, bit for bit, under input gaps and output back-pressure.

The case file (UNDENSE_CASE) holds: inputs, expected, signed, gap, stall, cycle_budget, layer.
"""
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge

from undense.sim.streams import StreamSink, StreamSource


@cocotb.test()
async def matches_golden(dut):
    case = json.loads(open(os.environ["UNDENSE_CASE"]).read())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    sink = StreamSink(dut, "o", dut.clk, stall=case["stall"], signed=case["signed"], lanes=case["lanes"],
                      bits=case["bits"], per_image=case["per_image"])
    cocotb.start_soon(sink.run())
    cocotb.start_soon(StreamSource(dut, "i", dut.clk, gap=case["gap"]).send(case["inputs"]))
    expected = case["expected"]
    budget = ClockCycles(dut.clk, case["cycle_budget"])
    await First(cocotb.start_soon(sink.wait_for(len(expected))), budget)
    assert len(sink.values) == len(expected), (
        f"{case['layer']}: only {len(sink.values)} of {len(expected)} outputs within {case['cycle_budget']} cycles")
    for index, (got, want) in enumerate(zip(sink.values, expected, strict=True)):
        assert got == want, f"{case['layer']}: output {index} is {got}, golden says {want}"
    await RisingEdge(dut.clk)
