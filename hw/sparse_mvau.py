"""The sparse matrix-vector-activation unit: one compiled Dense layer in hardware.

    input ──▶ loader ──▶ P processing elements (their rows, one nonzero a cycle) ──▶ streamer ──▶ output

The loader writes each input value into every PE's input copy; the PEs compute
their rows; the streamer reads the results back in row order. Input and output
memories are double-buffered, so loading image i+1, computing image i and
streaming image i-1 overlap: a layer takes max(in, largest PE load, out) cycles
per image plus a few, the cycle model of compiler/passes/fold.py.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.hw.pe import PEParams, ProcessingElement, bits_for

OUTPUT_FIFO_DEPTH = 8
EVENT_BITS = 48
# What a layer counts when built with count_events: the power model's activity, per kind of access.
EVENTS = ("weight_reads", "macs", "input_buffer_writes", "input_buffer_reads", "output_buffer_writes",
          "output_buffer_reads", "table_reads", "stream_in", "stream_out")


class SparseMVAU(wiring.Component):
    def __init__(self, pes: list[PEParams], row_owner: list[tuple[int, int]], in_shape, out_shape,
                 count_events: bool = False):
        """`row_owner[r]` is (PE, position among that PE's rows) of output row r.

        With `count_events`, the unit also counts its activity (EVENTS) on outputs of those names:
        for simulation, where the power model reads them; a synthesized unit leaves them out.
        """
        self.pe_params = pes
        self.row_owner = row_owner
        self.in_features = pes[0].in_features
        self.out_features = len(row_owner)
        self.count_events = count_events
        counters = {name: Out(EVENT_BITS) for name in EVENTS} if count_events else {}
        super().__init__({"i": In(stream.Signature(in_shape)), "o": Out(stream.Signature(out_shape)), **counters})

    def elaborate(self, platform):
        m = Module()
        pes = [ProcessingElement(params) for params in self.pe_params]
        for index, pe in enumerate(pes):
            m.submodules[f"pe{index}"] = pe
        n_in, n_out = self.in_features, self.out_features

        # loader: fill input bank `load_bank` of every PE, one value a cycle
        load_bank, load_index = Signal(), Signal(range(n_in))
        input_full, output_full = BankFlags(m, "input_full"), BankFlags(m, "output_full")
        m.d.comb += self.i.ready.eq(~input_full.at(load_bank))
        for pe in pes:
            m.d.comb += [pe.in_wr_addr.eq(Mux(load_bank, n_in, 0) + load_index), pe.in_wr_data.eq(self.i.payload),
                         pe.in_wr_en.eq(self.i.valid & self.i.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += load_index.eq(Mux(load_index == n_in - 1, 0, load_index + 1))
            with m.If(load_index == n_in - 1):
                m.d.sync += load_bank.eq(~load_bank)
                input_full.set(load_bank)

        # compute: start every PE on a full input bank whose output bank is free
        compute_bank, computing, started = Signal(), Signal(), Signal()
        busy = Signal()
        m.d.comb += busy.eq(sum(pe.busy for pe in pes) != 0)
        start = Signal()
        m.d.comb += start.eq(~computing & input_full.at(compute_bank) & ~output_full.at(compute_bank))
        for pe in pes:
            m.d.comb += [pe.start.eq(start), pe.bank.eq(compute_bank)]
        m.d.sync += started.eq(start)
        with m.If(start):
            m.d.sync += computing.eq(1)
        with m.Elif(computing & ~started & ~busy):
            m.d.sync += [computing.eq(0), compute_bank.eq(~compute_bank)]
            input_full.clear(compute_bank)
            output_full.set(compute_bank)

        # streamer: rows in order, from whichever PE owns each, through a small FIFO
        m.submodules.owner = owner = Memory(
            shape=bits_for(len(pes)) + bits_for(max(len(p.rows) for p in self.pe_params)), depth=n_out,
            init=[pe | (local << bits_for(len(pes))) for pe, local in self.row_owner])
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=len(self.o.payload), depth=OUTPUT_FIFO_DEPTH)
        owner_rd = owner.read_port()
        stream_bank, stream_row = Signal(), Signal(range(n_out))
        at_b, at_c, bank_b, pe_c = Signal(), Signal(), Signal(), Signal(bits_for(len(pes)))
        issue = Signal()
        m.d.comb += issue.eq(output_full.at(stream_bank) & (fifo.level + at_b + at_c < OUTPUT_FIFO_DEPTH))
        m.d.comb += [owner_rd.addr.eq(stream_row), owner_rd.en.eq(1)]
        m.d.sync += [at_b.eq(issue), bank_b.eq(stream_bank)]
        with m.If(issue):
            m.d.sync += stream_row.eq(Mux(stream_row == n_out - 1, 0, stream_row + 1))
            with m.If(stream_row == n_out - 1):
                m.d.sync += stream_bank.eq(~stream_bank)
                output_full.clear(stream_bank)
        pe_b = owner_rd.data[:bits_for(len(pes))]
        local_b = owner_rd.data[bits_for(len(pes)):]
        for pe, params in zip(pes, self.pe_params, strict=True):
            m.d.comb += [pe.out_rd_addr.eq(Mux(bank_b, len(params.rows), 0) + local_b), pe.out_rd_en.eq(at_b)]
        m.d.sync += [at_c.eq(at_b), pe_c.eq(pe_b)]
        results = [pe.out_rd_data for pe in pes]
        chosen = results[0]
        for index in range(1, len(pes)):
            chosen = Mux(pe_c == index, results[index], chosen)
        m.d.comb += [fifo.w_data.eq(chosen), fifo.w_en.eq(at_c),
                     self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready)]
        input_full.update()
        output_full.update()
        if self.count_events:
            self.count(m, pes, loaded=self.i.valid & self.i.ready, streamed=at_b, sent=self.o.valid & self.o.ready)
        return m


    def count(self, m: Module, pes: list[ProcessingElement], loaded, streamed, sent):
        """Add this cycle's events to the counters. Each per-PE sum is built once and shared by the events it
        stands for (every weight read also reads an input; every result written is looked up in the table),
        and a value loaded is written into all P input copies: fewer adders, a faster simulation."""
        def total(strobes):
            summed = Signal(range(len(strobes) + 1))
            m.d.comb += summed.eq(sum(strobes))
            return summed

        reads, writes = total([pe.weight_read for pe in pes]), total([pe.result_write for pe in pes])
        increments = {
            "weight_reads": reads, "macs": total([pe.mac for pe in pes]),
            "input_buffer_writes": Mux(loaded, len(pes), 0), "input_buffer_reads": reads,
            "output_buffer_writes": writes, "output_buffer_reads": streamed,
            "table_reads": writes if self.pe_params[0].table is not None else 0,
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
