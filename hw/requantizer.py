"""Bias, requantization and activation of one layer's accumulators, one a cycle, as compiler/golden.py
defines the bits:

    code = clamp(zero_point + rshift_round((acc + bias) * M, s)),   then table[code - qmin] if there is a table

In raw mode (a pre-quantized model's integer output) the code is acc + bias. A fixed-latency pipeline between
two streams without back-pressure (always ready): whoever feeds it counts what is in flight and leaves room
downstream for it.
"""
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.resources import LUT_SLICE_BITS, stored_shift, yosys_attrs
from undense.hw.multiplier import Multiplier
from undense.hw.registers import data_register


@dataclass(frozen=True)
class RequantParams:
    acc_bits: int
    out_shape: object                     # Amaranth shape of an output code
    shift_bits: int                       # bits of a row's shift beyond the layer's smallest
    shift_base: int = 0                   # the layer's smallest shift, less one: a constant shift, free in wiring
    zero_point: int = 0
    clamp: tuple[int, int] | None = None  # None: raw accumulator output
    table: tuple[int, ...] | None = None
    table_offset: int = 0                 # qmin of the requantized code (the table's first entry)
    table_style: str | None = None        # the table's placement (compiler/resources)
    slice_bits: int = 17                  # the product is taken in slices of the sum this wide, one DSP each
    multiplier: str | None = None         # the vendor's DSP block to build them from (hw/multiplier.py)

    @property
    def raw(self) -> bool:
        return self.clamp is None

    def row_layout(self) -> data.StructLayout:
        """One row's constants; of its shift s only s - 1 - shift_base is stored (rshift_round shifts right
        by s - 1 first, and the layer's common part is a constant)."""
        return data.StructLayout({"bias": signed(self.acc_bits), "multiplier": unsigned(16),
                                  "shift": unsigned(self.shift_bits)})

    def input_layout(self) -> data.StructLayout:
        """A sum and the constants of the row it belongs to."""
        return data.StructLayout({"acc": signed(self.acc_bits), "row": self.row_layout()})

    def stored_shift(self, shift: int) -> int:
        return stored_shift(shift, self.shift_base)


def shift_add(part, multiplier):
    """part (signed, a few bits) x multiplier as adds of shifted copies: logic, not a DSP block."""
    terms = [Mux(part[bit], multiplier << bit, 0) for bit in range(len(part) - 1)]
    return sum(terms, Const(0, signed(2))) - Mux(part[-1], multiplier << (len(part) - 1), 0)


class Requantizer(wiring.Component):
    def __init__(self, params: RequantParams):
        self.params = params
        super().__init__({"i": In(stream.Signature(params.input_layout(), always_ready=True)),
                          "o": Out(stream.Signature(params.out_shape, always_ready=True))})

    def elaborate(self, platform):
        p = self.params
        m = Module()
        valid1, sum1, row1 = Signal(), data_register(signed(p.acc_bits), "sum1"), data_register(p.row_layout(), "row1")
        m.d.sync += valid1.eq(self.i.valid)
        with m.If(self.i.valid):  # registers load only with a value: fewer toggles
            m.d.sync += [sum1.eq(self.i.payload.acc + self.i.payload.row.bias), row1.eq(self.i.payload.row)]
        if p.raw:
            m.d.comb += [self.o.valid.eq(valid1), self.o.payload.eq(sum1)]
            return m

        # the product in slices of the sum that each fit one DSP multiplier, added a cycle later: a product wider
        # than one DSP would otherwise add its slices in the multiplier's cycle. Each multiplier has a cycle of its
        # own, between registers that feed only it and take only its product, and one more register stage on each
        # side, so that the registers can sit beside its DSP block wherever the DSP block is
        slices = [(low, sum1[low:min(low + p.slice_bits, p.acc_bits)]) for low in range(0, p.acc_bits, p.slice_bits)]
        valid2, shift2 = Signal(), data_register(p.shift_bits, "shift2")
        m.d.sync += valid2.eq(valid1)
        with m.If(valid1):
            m.d.sync += shift2.eq(row1.shift)
        valid2b, shift2b = Signal(), data_register(p.shift_bits, "shift2b")
        partials = []
        m.d.sync += valid2b.eq(valid2)
        with m.If(valid2):
            m.d.sync += shift2b.eq(shift2)
        for low, part in slices:
            top = low + p.slice_bits >= p.acc_bits  # the top slice carries the sign
            operand_shape = signed(len(part)) if top else unsigned(len(part))
            partial = data_register(signed(len(part) + 18), f"partial{low}")
            if top and low > 0 and len(part) <= LUT_SLICE_BITS:
                operand = data_register(operand_shape, f"operand{low}")
                multiplier2 = data_register(row1.multiplier.shape(), "multiplier2")
                with m.If(valid1):
                    m.d.sync += [operand.eq(part), multiplier2.eq(row1.multiplier)]
                with m.If(valid2):
                    m.d.sync += partial.eq(shift_add(operand, multiplier2))
            else:  # the multiplier's own registers take the operands and the product
                m.submodules[f"multiplier{low}"] = multiplier = Multiplier(operand_shape, row1.multiplier.shape(),
                                                                           partial.shape(), p.multiplier)
                m.d.comb += [multiplier.a.eq(part), multiplier.b.eq(row1.multiplier), partial.eq(multiplier.p)]
            partials.append(partial)
        valid2c, shift2c = Signal(), data_register(p.shift_bits, "shift2c")
        products = [data_register(partial.shape(), f"product{low}") for (low, _), partial in zip(slices, partials,
                                                                                               strict=True)]
        m.d.sync += valid2c.eq(valid2b)
        with m.If(valid2b):
            m.d.sync += [shift2c.eq(shift2b), *(product.eq(partial) for product, partial in zip(products, partials,
                                                                                                 strict=True))]
        valid3, scaled = Signal(), data_register(signed(p.acc_bits + 17), "scaled")
        shift3 = data_register(p.shift_bits, "shift3")
        m.d.sync += valid3.eq(valid2c)
        with m.If(valid2c):
            m.d.sync += [scaled.eq(sum(product << low for (low, _), product in zip(slices, products, strict=True))),
                         shift3.eq(shift2c)]
        # rshift_round(v, s), half to even: h = v >> (s - 1) holds the quotient and the half bit h[0]; round up
        # when the half bit is set and either a bit below it (sticky) or the quotient's lowest bit h[1] is. The
        # barrel shift (with the sticky bit beside it), the rounding add and the clamp each get a cycle
        valid4, sticky = Signal(), data_register(1, "sticky")
        shifted = data_register(signed(max(p.acc_bits + 17 - p.shift_base, 2)), "shifted")
        below = Signal(len(scaled) - 1)  # bit i: i lies below the half bit, i < s - 1 = shift_base + shift3
        m.d.comb += below.eq(Cat(shift3 + p.shift_base > i for i in range(len(below))))
        m.d.sync += valid4.eq(valid3)
        with m.If(valid3):
            m.d.sync += [shifted.eq((scaled >> p.shift_base) >> shift3), sticky.eq((scaled[:-1] & below).any())]
        valid4b, rounded = Signal(), data_register(signed(len(shifted) + 1), "rounded")
        m.d.sync += valid4b.eq(valid4)
        with m.If(valid4):
            m.d.sync += rounded.eq((shifted >> 1) + (shifted[0] & (sticky | shifted[1])) + p.zero_point)
        low, high = p.clamp
        valid5, code = Signal(), data_register(signed(max(len(Const(low)), len(Const(high))) + 1), "code")
        m.d.sync += valid5.eq(valid4b)
        with m.If(valid4b):
            m.d.sync += code.eq(Mux(rounded < low, low, Mux(rounded > high, high, rounded)))
        if p.table is None:
            m.d.comb += [self.o.valid.eq(valid5), self.o.payload.eq(code)]
            return m

        m.submodules.table = table = Memory(shape=p.out_shape, depth=len(p.table), init=list(p.table),
                                            attrs=yosys_attrs(p.table_style))
        table_rd = table.read_port()
        valid6 = Signal()
        m.d.comb += [table_rd.addr.eq(code - p.table_offset), table_rd.en.eq(valid5)]
        m.d.sync += valid6.eq(valid5)
        if p.table_style != "block":
            m.d.comb += [self.o.valid.eq(valid6), self.o.payload.eq(table_rd.data)]
            return m
        # a block RAM's output is slow, and the RAM may sit far from the group's queue: a register between them
        valid7, looked_up = Signal(), data_register(p.out_shape, "looked_up")
        m.d.sync += [valid7.eq(valid6), looked_up.eq(table_rd.data)]
        m.d.comb += [self.o.valid.eq(valid7), self.o.payload.eq(looked_up)]
        return m
