"""One processing element of the sparse matrix-vector-activation unit.

It owns the rows the compiler assigned to it and computes them one after the
other, one nonzero weight per cycle:

    acc = sum(w * x[column])

and writes each row's accumulator into its output memory. Bias, requantization
and activation happen once per layer, in the unit's streamer (hw/requantizer.py),
as the rows leave in order: one requantizer per layer instead of one per PE.
It keeps its own copy of the layer's input (two banks, so the next image loads
while this one computes) and its own output memory (two banks, read by the
unit's output streamer).

The weight memory holds (value, column, last-of-row) for every nonzero, row by
row; a row with no nonzero holds one zero entry, so it costs one cycle. It is a
ROM, except where the compiler placed it in SPRAM (the iCE40 UP5K's big
single-port RAM, which the bitstream cannot initialise): then it starts empty,
and the words of `weight_words` arrive on the load port before the first image.
"""
from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.numbers import index_bits
from undense.compiler.resources import loaded_at_run_time, yosys_attrs


@dataclass(frozen=True)
class PEParams:
    """Everything a PE needs, as plain numbers: no ONNX, no compiler objects."""

    entries: tuple[tuple[int, int, bool], ...]  # (weight code, input column, last of its row)
    row_count: int                               # the rows it computes, one accumulator each
    in_features: int
    in_shape: object                             # Amaranth shape of an input code
    weight_bits: int
    acc_bits: int
    styles: dict[str, str] | None = None        # placement of "weights", "inputs", "outputs" (compiler/resources)

    @property
    def loaded_weights(self) -> bool:
        """The weights are written through the load port at run time instead of being a ROM."""
        return loaded_at_run_time((self.styles or {}).get("weights"))

    def entry_layout(self) -> data.StructLayout:
        return data.StructLayout({"value": signed(self.weight_bits), "column": unsigned(index_bits(self.in_features)),
                                  "last": 1})


def weight_entries(params: PEParams) -> list[dict]:
    """The weight memory's contents, entry by entry, as its layout's fields."""
    return [{"value": v, "column": c, "last": int(last)} for v, c, last in params.entries]


def weight_words(params: PEParams) -> list[int]:
    """The weight memory's contents as the words its load port takes, entry by entry."""
    layout = params.entry_layout()
    return [layout.const(entry).as_value().value for entry in weight_entries(params)]


class ProcessingElement(wiring.Component):
    def __init__(self, params: PEParams):
        self.params = params
        load = {"load_addr": In(index_bits(len(params.entries))), "load_data": In(params.entry_layout()),
                "load_en": In(1)} if params.loaded_weights else {}
        super().__init__({
            **load,
            "start": In(1),           # pulse: compute the image in bank `bank`
            "bank": In(1),
            "busy": Out(1),           # high from start until the last row is in the output memory
            "in_wr_addr": In(index_bits(params.in_features) + 1),  # bank, then index
            "in_wr_data": In(params.in_shape),
            "in_wr_en": In(1),
            "out_rd_addr": In(index_bits(params.row_count) + 1),
            "out_rd_en": In(1),
            "out_rd_data": Out(signed(params.acc_bits)),
            # one-cycle strobes of the events the power model counts
            "weight_read": Out(1),    # a weight entry (and the input it names) was read
            "mac": Out(1),            # a nonzero weight was multiplied and accumulated
            "result_write": Out(1),   # a finished row went into the output memory
        })

    def attrs(self, memory: str) -> dict[str, str]:
        return yosys_attrs((self.params.styles or {}).get(memory))

    def elaborate(self, platform):
        p = self.params
        m = Module()
        entry_layout = p.entry_layout()
        m.submodules.weights = weights = Memory(
            shape=entry_layout, depth=len(p.entries),
            init=[] if p.loaded_weights else weight_entries(p),
            attrs=self.attrs("weights"))
        # banks are the top address bit: no adder in front of a memory
        in_index_bits, out_index_bits = index_bits(p.in_features), index_bits(p.row_count)
        m.submodules.inputs = inputs = Memory(shape=p.in_shape, depth=2 << in_index_bits, init=[],
                                              attrs=self.attrs("inputs"))
        m.submodules.outputs = outputs = Memory(shape=signed(p.acc_bits), depth=2 << out_index_bits, init=[],
                                                attrs=self.attrs("outputs"))

        in_wr = inputs.write_port()
        m.d.comb += [in_wr.addr.eq(self.in_wr_addr), in_wr.data.eq(self.in_wr_data), in_wr.en.eq(self.in_wr_en)]
        out_rd = outputs.read_port()
        m.d.comb += [out_rd.addr.eq(self.out_rd_addr), out_rd.en.eq(self.out_rd_en), self.out_rd_data.eq(out_rd.data)]

        # stage 0: issue the weight entries, one a cycle
        weight_rd = weights.read_port()
        entry = Signal(range(len(p.entries) + 1))
        issuing = Signal()
        bank = Signal()
        if p.loaded_weights:  # SPRAM has one port: loading and reading share its address
            weight_wr = weights.write_port()
            address = Signal.like(weight_rd.addr)
            m.d.comb += [address.eq(Mux(self.load_en, self.load_addr, entry)), weight_wr.addr.eq(address),
                         weight_wr.data.eq(self.load_data), weight_wr.en.eq(self.load_en),
                         weight_rd.addr.eq(address), weight_rd.en.eq(~self.load_en)]
        else:
            m.d.comb += [weight_rd.addr.eq(entry), weight_rd.en.eq(1)]
        with m.If(self.start):
            m.d.sync += [entry.eq(0), issuing.eq(1), bank.eq(self.bank)]
        with m.Elif(issuing):
            m.d.sync += entry.eq(entry + 1)
            with m.If(entry == len(p.entries) - 1):
                m.d.sync += issuing.eq(0)

        # stage 1: the entry is out of memory: register it
        valid1, valid2, entry2 = Signal(), Signal(), Signal(entry_layout)
        m.d.sync += [valid1.eq(issuing & ~self.start), valid2.eq(valid1), entry2.eq(weight_rd.data)]
        m.d.comb += self.weight_read.eq(valid1)

        # stage 2: read the input it names
        input_rd = inputs.read_port()
        m.d.comb += [input_rd.addr.eq(Cat(entry2.column, bank)), input_rd.en.eq(1)]

        # stage 3: the input is out of memory: register it (a block RAM's output is slow)
        valid3, value3, last3 = Signal(), Signal(signed(p.weight_bits)), Signal()
        m.d.sync += [valid3.eq(valid2), value3.eq(entry2.value), last3.eq(entry2.last)]
        valid4, value4, last4, input4 = Signal(), Signal(signed(p.weight_bits)), Signal(), Signal(p.in_shape)
        m.d.sync += [valid4.eq(valid3), value4.eq(value3), last4.eq(last3), input4.eq(input_rd.data)]

        # stage 4: multiply (stage 5 holds the product)
        valid5, last5 = Signal(), Signal()
        product5 = Signal(signed(p.weight_bits + p.in_shape.width + 1))
        m.d.sync += [valid5.eq(valid4), last5.eq(last4), product5.eq(value4 * input4)]
        m.d.comb += self.mac.eq(valid4 & (value4 != 0))

        # stage 5: accumulate; at the end of a row write the sum to the output memory
        acc, row_start = Signal(signed(p.acc_bits)), Signal(init=1)
        total = Mux(row_start, 0, acc) + product5
        with m.If(self.start):
            m.d.sync += row_start.eq(1)
        with m.Elif(valid5):
            m.d.sync += [acc.eq(total), row_start.eq(last5)]

        write_en, out_row = Signal(), Signal(out_index_bits)
        m.d.comb += [write_en.eq(valid5 & last5 & ~self.start), self.result_write.eq(write_en)]
        out_wr = outputs.write_port()
        m.d.comb += [out_wr.addr.eq(Cat(out_row, bank)), out_wr.data.eq(total), out_wr.en.eq(write_en)]
        with m.If(self.start):
            m.d.sync += out_row.eq(0)
        with m.Elif(write_en):
            m.d.sync += out_row.eq(out_row + 1)

        # busy until the last row is written
        with m.If(self.start):
            m.d.sync += self.busy.eq(1)
        with m.Elif(write_en & (out_row == p.row_count - 1)):
            m.d.sync += self.busy.eq(0)
        return m
