"""The sparse matrix-vector-activation unit: one compiled Dense layer in hardware.

    input ──▶ loader ──▶ P processing elements (their rows, one nonzero a cycle) ──▶ streamer ──▶ output
                                                                         (requantizer)

The loader writes each input value into every PE's input copy; the PEs compute
their rows' accumulators; the streamer reads them back in row order through the
layer's one requantizer (bias, fixed-point scale, clamp, activation). Input and output
memories are double-buffered, so loading image i+1, computing image i and
streaming image i-1 overlap: a layer takes max(in, largest PE load, out) cycles
per image plus a few, the cycle model of compiler/passes/fold.py.
"""
from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.numbers import index_bits
from undense.compiler.resources import OUTPUT_FIFO_DEPTH, yosys_attrs
from undense.hw.fifo import StreamFIFO
from undense.hw.pe import PEParams, ProcessingElement
from undense.hw.requantizer import Requantizer, RequantParams

EVENT_BITS = 48
# What a layer counts when built with count_events: the power model's activity, per kind of access.
EVENTS = ("weight_reads", "macs", "input_buffer_writes", "input_buffer_reads", "output_buffer_writes",
          "output_buffer_reads", "table_reads", "stream_in", "stream_out")


@dataclass(frozen=True)
class OutputRow:
    """Where output row r is computed (PE, position among that PE's rows) and its requantization constants."""
    pe: int
    position: int
    bias: int
    multiplier: int  # 0 in raw mode
    shift: int


class SparseMVAU(wiring.Component):
    def __init__(self, pes: list[PEParams], rows: list[OutputRow], requant: RequantParams, in_shape,
                 count_events: bool = False, rows_style: str | None = None, fifo_style: str | None = None):
        """`rows[r]` says where output row r is computed and how it is requantized.

        With `count_events`, the unit also counts its activity (EVENTS) on outputs of those names:
        for simulation, where the power model reads them; a synthesized unit leaves them out.
        """
        self.pe_params = pes
        self.rows = rows
        self.requant = requant
        self.in_features = pes[0].in_features
        self.out_features = len(rows)
        self.count_events = count_events
        self.rows_style, self.fifo_style = rows_style, fifo_style
        counters = {name: Out(EVENT_BITS) for name in EVENTS} if count_events else {}
        super().__init__({"i": In(stream.Signature(in_shape)), "o": Out(stream.Signature(requant.out_shape)),
                          **counters, **self.load_ports()})

    def loaded(self) -> list[PEParams]:
        """The PEs whose weights are loaded at run time, in the order of the load port's enables."""
        return [params for params in self.pe_params if params.loaded_weights]

    def load_ports(self) -> dict:
        """One address and data bus shared by the PEs whose weights are loaded, and an enable for each."""
        loaded = self.loaded()
        if not loaded:
            return {}
        return {"load_addr": In(max(index_bits(len(p.entries)) for p in loaded)),
                "load_data": In(max(p.entry_layout().size for p in loaded)), "load_en": In(len(loaded))}

    def elaborate(self, platform):
        m = Module()
        pes = [ProcessingElement(params) for params in self.pe_params]
        for index, pe in enumerate(pes):
            m.submodules[f"pe{index}"] = pe
        for enable, pe in enumerate(pe for pe in pes if pe.params.loaded_weights):
            m.d.comb += [pe.load_addr.eq(self.load_addr), pe.load_data.eq(self.load_data),
                         pe.load_en.eq(self.load_en[enable])]
        n_in, n_out = self.in_features, self.out_features

        # loader: fill input bank `load_bank` of every PE, one value a cycle
        load_bank, load_index = Signal(), Signal(index_bits(n_in))
        input_full, output_full = BankFlags(m, "input_full"), BankFlags(m, "output_full")
        m.d.comb += self.i.ready.eq(~input_full.at(load_bank))
        for pe in pes:
            m.d.comb += [pe.in_wr_addr.eq(Cat(load_index, load_bank)), pe.in_wr_data.eq(self.i.payload),
                         pe.in_wr_en.eq(self.i.valid & self.i.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += load_index.eq(Mux(load_index == n_in - 1, 0, load_index + 1))
            with m.If(load_index == n_in - 1):
                m.d.sync += load_bank.eq(~load_bank)
                input_full.set(load_bank)

        # compute: start every PE on a full input bank whose output bank is free. The PEs see the start a
        # cycle late, through a register (it fans out to all of them), and raise busy the cycle after
        compute_bank, computing = Signal(), Signal()
        busy = Signal()
        m.d.comb += busy.eq(sum(pe.busy for pe in pes) != 0)
        start, pe_start, starting = Signal(), Signal(), Signal()
        m.d.comb += start.eq(~computing & input_full.at(compute_bank) & ~output_full.at(compute_bank))
        m.d.sync += [pe_start.eq(start), starting.eq(pe_start)]
        for pe in pes:
            m.d.comb += [pe.start.eq(pe_start), pe.bank.eq(compute_bank)]
        with m.If(start):
            m.d.sync += computing.eq(1)
        with m.Elif(computing & ~pe_start & ~starting & ~busy):
            m.d.sync += [computing.eq(0), compute_bank.eq(~compute_bank)]
            input_full.clear(compute_bank)
            output_full.set(compute_bank)

        # streamer: rows in order, from whichever PE owns each, through the requantizer and a small FIFO
        pe_bits, position_bits = index_bits(len(pes)), index_bits(max(p.row_count for p in self.pe_params))
        row_layout = data.StructLayout({"pe": pe_bits, "position": position_bits,
                                        "requant": self.requant.row_layout()})
        m.submodules.rows = rows = Memory(shape=row_layout, depth=n_out, init=[
            {"pe": r.pe, "position": r.position,
             "requant": {"bias": r.bias, "multiplier": r.multiplier, "shift": self.requant.stored_shift(r.shift)}}
            for r in self.rows], attrs=yosys_attrs(self.rows_style))
        m.submodules.requantizer = requantizer = Requantizer(self.requant)
        m.submodules.fifo = fifo = StreamFIFO(self.requant.out_shape, OUTPUT_FIFO_DEPTH, self.fifo_style)
        rows_rd = rows.read_port()
        stream_bank, stream_row = Signal(), Signal(range(n_out))
        in_flight = Signal(range(OUTPUT_FIFO_DEPTH + 1))  # rows issued and not yet in the FIFO
        issue = Signal()
        m.d.comb += issue.eq(output_full.at(stream_bank) & (fifo.level + in_flight < OUTPUT_FIFO_DEPTH))
        m.d.sync += in_flight.eq(in_flight + issue - requantizer.o_valid)
        m.d.comb += [rows_rd.addr.eq(stream_row), rows_rd.en.eq(1)]
        with m.If(issue):
            m.d.sync += stream_row.eq(Mux(stream_row == n_out - 1, 0, stream_row + 1))
            with m.If(stream_row == n_out - 1):
                m.d.sync += stream_bank.eq(~stream_bank)
                output_full.clear(stream_bank)
        # b: the row's entry is out of memory: register it
        at_a, bank_a, at_b, bank_b, row_b = Signal(), Signal(), Signal(), Signal(), Signal(row_layout)
        m.d.sync += [at_a.eq(issue), bank_a.eq(stream_bank), at_b.eq(at_a), bank_b.eq(bank_a), row_b.eq(rows_rd.data)]
        # c: the owning PE alone reads the accumulator, through a read address and enable of its own
        # (one shared address would fan out to every PE's output memory)
        at_c, requant_c = Signal(), Signal(self.requant.row_layout())
        m.d.sync += [at_c.eq(at_b), requant_c.eq(row_b.requant)]
        owner = Signal(len(pes))  # one-hot: the PE that owns the row
        selected = Signal(len(pes))  # the same a cycle later, when that PE's accumulator is out
        m.d.comb += owner.eq(Mux(at_b, 1 << row_b.pe, 0))
        for index, (pe, params) in enumerate(zip(pes, self.pe_params, strict=True)):
            address, reading = Signal.like(pe.out_rd_addr, name=f"pe{index}_rd_addr"), Signal(name=f"pe{index}_rd")
            m.d.sync += [reading.eq(owner[index]), selected[index].eq(reading)]
            with m.If(owner[index]):
                m.d.sync += address.eq(Cat(row_b.position[:index_bits(params.row_count)], bank_b))
            m.d.comb += [pe.out_rd_addr.eq(address), pe.out_rd_en.eq(reading)]
        # d: the accumulator is out; pick the owner's (e holds it), then requantize it
        at_d, requant_d = Signal(), Signal(self.requant.row_layout())
        m.d.sync += [at_d.eq(at_c), requant_d.eq(requant_c)]
        # an AND-OR of one-hot selects: each select drives one accumulator's bits, where a binary PE number would
        # drive every PE's (a fan-out that limited the clock)
        chosen = 0
        for index, pe in enumerate(pes):
            chosen = chosen | Mux(selected[index], pe.out_rd_data, 0)
        at_e, acc_e, requant_e = Signal(), Signal(signed(self.requant.acc_bits)), Signal(self.requant.row_layout())
        m.d.sync += [at_e.eq(at_d), acc_e.eq(chosen), requant_e.eq(requant_d)]
        m.d.comb += [requantizer.valid.eq(at_e), requantizer.acc.eq(acc_e), requantizer.row.eq(requant_e),
                     fifo.i.payload.eq(requantizer.o_code), fifo.i.valid.eq(requantizer.o_valid)]
        wiring.connect(m, fifo.o, wiring.flipped(self.o))
        input_full.update()
        output_full.update()
        if self.count_events:
            self.count(m, pes, loaded=self.i.valid & self.i.ready, streamed=at_c, requantized=requantizer.o_valid,
                       sent=self.o.valid & self.o.ready)
        return m


    def count(self, m: Module, pes: list[ProcessingElement], loaded, streamed, requantized, sent):
        """Add this cycle's events to the counters. Each per-PE sum is built once and shared by the events it
        stands for (every weight read also reads an input), and a value loaded is written into all P input
        copies: fewer adders, a faster simulation."""
        def total(strobes):
            summed = Signal(range(len(strobes) + 1))
            m.d.comb += summed.eq(sum(strobes))
            return summed

        reads = total([pe.weight_read for pe in pes])
        increments = {
            "weight_reads": reads, "macs": total([pe.mac for pe in pes]),
            "input_buffer_writes": Mux(loaded, len(pes), 0), "input_buffer_reads": reads,
            "output_buffer_writes": total([pe.result_write for pe in pes]), "output_buffer_reads": streamed,
            "table_reads": requantized if self.requant.table is not None else 0,
            "stream_in": loaded, "stream_out": sent,
        }
        for name, increment in increments.items():
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + increment)


class BankFlags:
    """One full/empty flag per bank of a double buffer; set and cleared by different stages in one cycle."""

    def __init__(self, m: Module, name: str):
        self.m = m
        self.flags = [Signal(name=f"{name}{bank}") for bank in range(2)]
        self.sets = [Signal(name=f"{name}{bank}_set") for bank in range(2)]
        self.clears = [Signal(name=f"{name}{bank}_clear") for bank in range(2)]

    def at(self, bank):
        return Mux(bank, self.flags[1], self.flags[0])

    def _pulse(self, signals, bank):
        self.m.d.comb += [signals[0].eq(~bank), signals[1].eq(bank)]

    def set(self, bank):
        self._pulse(self.sets, bank)

    def clear(self, bank):
        self._pulse(self.clears, bank)

    def update(self):
        for flag, set_, clear in zip(self.flags, self.sets, self.clears, strict=True):
            self.m.d.sync += flag.eq((flag | set_) & ~clear)
