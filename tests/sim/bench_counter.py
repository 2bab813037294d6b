"""cocotb bench for the toolchain check in test_runner.py: a free-running counter."""
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def counts_every_cycle(dut):
    await _reset(dut)
    start = dut.count.value.to_unsigned()
    await ClockCycles(dut.clk, 10)
    assert dut.count.value.to_unsigned() == (start + 10) % 256


@cocotb.test()
async def fails_on_purpose(dut):
    """Proves a failing bench fails the pytest test that runs it."""
    await _reset(dut)
    assert dut.count.value.to_unsigned() == 1000
