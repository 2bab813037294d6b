"""One processing element of the sparse matrix-vector-activation unit.

It owns the rows the compiler assigned to it and computes them one after the
other, one nonzero weight per cycle:

    acc = sum(w * x[column]) + bias
    code = clamp(zero_point + rshift_round(acc * M, s)),   then table[code - qmin] if there is a table

exactly as compiler/golden.py defines the bits. It keeps its own copy of the
layer's input (two banks, so the next image loads while this one computes) and
its own output memory (two banks, read by the unit's output streamer).

The weight memory holds (value, column, last-of-row) for every nonzero, row by
row; a row with no nonzero holds one zero entry, so it costs one cycle.
"""
from dataclasses import dataclass

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


@dataclass(frozen=True)
class RowRequant:
    bias: int
    multiplier: int  # 0 in raw mode (the output is the accumulator)
    shift: int


@dataclass(frozen=True)
class PEParams:
    """Everything a PE needs, as plain numbers: no ONNX, no compiler objects."""

    entries: tuple[tuple[int, int, bool], ...]  # (weight code, input column, last of its row)
    rows: tuple[RowRequant, ...]                  # the PE's rows, in the order it computes them
    in_features: int
    in_shape: object                              # Amaranth shape of an input code
    weight_bits: int
    acc_bits: int
    out_shape: object                             # Amaranth shape of an output code
    zero_point: int = 0
    clamp: tuple[int, int] | None = None          # None: raw accumulator output
    table: tuple[int, ...] | None = None
    table_offset: int = 0                         # qmin of the requantized code (the table's first entry)


def bits_for(count: int) -> int:
    return max(1, (count - 1).bit_length())


class ProcessingElement(wiring.Component):
    def __init__(self, params: PEParams):
        self.params = params
        self.row_count = len(params.rows)
        super().__init__({
            "start": In(1),           # pulse: compute the image in bank `bank`
            "bank": In(1),
            "busy": Out(1),           # high from start until the last row is in the output memory
            "in_wr_addr": In(bits_for(2 * params.in_features)),
            "in_wr_data": In(params.in_shape),
            "in_wr_en": In(1),
            "out_rd_addr": In(bits_for(2 * max(self.row_count, 1))),
            "out_rd_en": In(1),
            "out_rd_data": Out(params.out_shape),
            # one-cycle strobes of the events the power model counts
            "weight_read": Out(1),    # a weight entry (and the input it names) was read
            "mac": Out(1),            # a nonzero weight was multiplied and accumulated
            "result_write": Out(1),   # a finished row went into the output memory
        })

    def elaborate(self, platform):
        p = self.params
        m = Module()
        entry_layout = data.StructLayout({"value": signed(p.weight_bits), "column": unsigned(bits_for(p.in_features)),
                                          "last": 1})
        raw = p.clamp is None
        shift_bits = bits_for(max(r.shift for r in p.rows)) if not raw else 1
        # the shift is stored less one: the rounding shifts right by s - 1 first
        row_layout = data.StructLayout({"bias": signed(p.acc_bits), "multiplier": unsigned(16),
                                        "shift_less_one": unsigned(shift_bits)})
        m.submodules.weights = weights = Memory(
            shape=entry_layout, depth=len(p.entries),
            init=[{"value": v, "column": c, "last": int(last)} for v, c, last in p.entries])
        m.submodules.rows = rows = Memory(
            shape=row_layout, depth=self.row_count,
            init=[{"bias": r.bias, "multiplier": r.multiplier, "shift_less_one": max(r.shift - 1, 0)} for r in p.rows])
        m.submodules.inputs = inputs = Memory(shape=p.in_shape, depth=2 * p.in_features, init=[])
        m.submodules.outputs = outputs = Memory(shape=p.out_shape, depth=2 * self.row_count, init=[])

        in_wr = inputs.write_port()
        m.d.comb += [in_wr.addr.eq(self.in_wr_addr), in_wr.data.eq(self.in_wr_data), in_wr.en.eq(self.in_wr_en)]
        out_rd = outputs.read_port()
        m.d.comb += [out_rd.addr.eq(self.out_rd_addr), out_rd.en.eq(self.out_rd_en), self.out_rd_data.eq(out_rd.data)]

        # stage 0: issue the weight entries, one a cycle
        weight_rd = weights.read_port()
        entry = Signal(range(len(p.entries) + 1))
        issuing = Signal()
        bank = Signal()
        m.d.comb += [weight_rd.addr.eq(entry), weight_rd.en.eq(1)]
        with m.If(self.start):
            m.d.sync += [entry.eq(0), issuing.eq(1), bank.eq(self.bank)]
        with m.Elif(issuing):
            m.d.sync += entry.eq(entry + 1)
            with m.If(entry == len(p.entries) - 1):
                m.d.sync += issuing.eq(0)

        # stage 1: the entry is out of memory; read its input and its row's requantization
        valid1 = Signal()
        m.d.sync += valid1.eq(issuing & ~self.start)
        entry1 = entry_layout(weight_rd.data)
        input_rd = inputs.read_port()
        row_rd = rows.read_port()
        row1 = Signal(range(max(self.row_count, 1) + 1))
        m.d.comb += [input_rd.addr.eq(Mux(bank, p.in_features, 0) + entry1.column), input_rd.en.eq(1),
                     row_rd.addr.eq(row1), row_rd.en.eq(1)]
        with m.If(self.start):
            m.d.sync += row1.eq(0)
        with m.Elif(valid1 & entry1.last):
            m.d.sync += row1.eq(row1 + 1)

        # stage 2: multiply-accumulate; at the end of a row hand the sum on
        valid2, value2, last2 = Signal(), Signal(signed(p.weight_bits)), Signal()
        m.d.sync += [valid2.eq(valid1), value2.eq(entry1.value), last2.eq(entry1.last)]
        m.d.comb += [self.weight_read.eq(valid1), self.mac.eq(valid2 & (value2 != 0))]
        acc, row_start = Signal(signed(p.acc_bits)), Signal(init=1)
        product = value2 * input_rd.data
        total = Mux(row_start, 0, acc) + product
        done2 = Signal()
        sum3, requant3, out_row = Signal(signed(p.acc_bits)), Signal(row_layout), Signal(bits_for(self.row_count))
        m.d.sync += done2.eq(0)
        with m.If(self.start):
            m.d.sync += [row_start.eq(1), out_row.eq(0)]
        with m.Elif(valid2):
            m.d.sync += [acc.eq(total), row_start.eq(last2)]
            with m.If(last2):
                m.d.sync += [done2.eq(1), sum3.eq(total + row_layout(row_rd.data).bias), requant3.eq(row_rd.data)]

        # stage 3..: requantize, clamp, look up, write to the output memory
        write_en, write_value = Signal(), Signal(p.out_shape)
        if raw:
            m.d.comb += [write_en.eq(done2), write_value.eq(sum3)]
        else:
            valid4, scaled = Signal(), Signal(signed(p.acc_bits + 17))
            shift4 = Signal(shift_bits)
            # the requantization registers load only when a row finishes: fewer toggles (and a faster simulation)
            m.d.sync += valid4.eq(done2)
            with m.If(done2):
                m.d.sync += [scaled.eq(sum3 * requant3.multiplier), shift4.eq(requant3.shift_less_one)]
            # rshift_round(v, s) = ((v >> (s - 1)) + 1) >> 1, the same as (v + 2^(s-1)) >> s
            rounded = (((scaled >> shift4) + 1) >> 1) + p.zero_point
            low, high = p.clamp
            code = Signal(signed(max(len(Const(low)), len(Const(high))) + 1))
            valid5 = Signal()
            m.d.sync += valid5.eq(valid4)
            with m.If(valid4):
                m.d.sync += code.eq(Mux(rounded < low, low, Mux(rounded > high, high, rounded)))
            if p.table is None:
                m.d.comb += [write_en.eq(valid5), write_value.eq(code)]
            else:
                m.submodules.table = table = Memory(shape=p.out_shape, depth=len(p.table), init=list(p.table))
                table_rd = table.read_port()
                valid6 = Signal()
                m.d.comb += [table_rd.addr.eq(code - p.table_offset), table_rd.en.eq(1)]
                m.d.sync += valid6.eq(valid5)
                m.d.comb += [write_en.eq(valid6), write_value.eq(table_rd.data)]

        m.d.comb += self.result_write.eq(write_en)
        out_wr = outputs.write_port()
        m.d.comb += [out_wr.addr.eq(Mux(bank, self.row_count, 0) + out_row), out_wr.data.eq(write_value),
                     out_wr.en.eq(write_en)]
        with m.If(write_en):
            m.d.sync += out_row.eq(out_row + 1)

        # busy until the last row is written
        with m.If(self.start):
            m.d.sync += self.busy.eq(1)
        with m.Elif(write_en & (out_row == self.row_count - 1)):
            m.d.sync += self.busy.eq(0)
        return m
