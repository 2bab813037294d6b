"""A pipelined multiplier: operands into registers, their product into a register, two cycles from `a` and `b` to
`p`.

Built as registers around `*` by default, which Yosys maps to a DSP block with the registers beside it in the
fabric: on ECP5 (Yosys 0.70) none of them is folded into the block, so a large design's placer can leave the
block tens of columns from its registers, with two long routes on every product. With `primitive="ecp5"` the
three registers are the MULT18X18D block's own input and output registers instead (the instance is wired as
Yosys's own ECP5 mapping of a multiply, techlibs/lattice/dsp_map_18x18.v, with REG_INPUTA/B and REG_OUTPUT on
CLK0): the same function and latency, and nextpnr times the block's pins as registers. Yosys has no simulation
model of MULT18X18D, so simulation builds the default; only synthesis asks for the primitive. Other families
build the default (Yosys folds the registers into an iCE40 SB_MAC16 itself). The registers have no reset
(hw/registers.py).
"""
from amaranth import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from undense.hw.registers import data_register

DSP_OPERAND_BITS = 18
DSP_PRODUCT_BITS = 36


class Multiplier(wiring.Component):
    def __init__(self, a_shape, b_shape, p_shape, primitive: str | None = None):
        self.primitive = primitive
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(p_shape)})

    def elaborate(self, platform):
        m = Module()
        if self.primitive == "ecp5":
            self.ecp5_block(m)
        else:
            a, b = data_register(self.a.shape(), "a_q"), data_register(self.b.shape(), "b_q")
            product = data_register((a * b).shape(), "p_q")
            m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
            m.d.comb += self.p.eq(product)
        return m

    def ecp5_block(self, m: Module):
        for operand in (self.a, self.b):
            assert len(operand) <= DSP_OPERAND_BITS, "an operand wider than the DSP block's 18 bits"
        a, b = Signal(DSP_OPERAND_BITS), Signal(DSP_OPERAND_BITS)
        product = Signal(DSP_PRODUCT_BITS)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product)]  # signed operands sign-extended
        ports = {f"i_A{bit}": a[bit] for bit in range(DSP_OPERAND_BITS)}
        ports |= {f"i_B{bit}": b[bit] for bit in range(DSP_OPERAND_BITS)}
        ports |= {f"i_C{bit}": 0 for bit in range(DSP_OPERAND_BITS)}
        ports |= {f"o_P{bit}": product[bit] for bit in range(DSP_PRODUCT_BITS)}
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0", p_GSR="DISABLED",
            p_RESETMODE="SYNC", i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0,
            i_SIGNEDA=int(self.a.shape().signed), i_SIGNEDB=int(self.b.shape().signed), i_SOURCEA=0, i_SOURCEB=0,
            **ports)
