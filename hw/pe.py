"""One processing element of the event-driven Dense unit: input events in, its rows' partial sums out.

For each input event (position c on its lane, value x) it looks up where column c's weights start and how many
there are (its column table), then issues them one a cycle: read (w, row), multiply, and add w * x into the
accumulator of that row, read-modify-write. A sum is written back a cycle after it is computed, so the read
for one entry misses the sums of the two entries before it; a row met again within two entries takes its sum
from the register that holds it instead: no hazard, no stall.

The accumulators have two banks: the image after the last event of an image goes into the other bank while
the unit drains this one (reading each row, and clearing it a cycle later). `full[b]` says bank b holds a
finished image; the unit's `release[b]` empties it.

The column table and the weight memory sit in the ProcessingElement beside its logic (PELogic, which holds the
accumulators), so that the logic depends on the PE's shape only and PEs of equal shape share one Verilog module
(hw/shared.py). The weight memory is a ROM, except
where the compiler placed it in SPRAM (the iCE40 UP5K): then its words arrive on the load port before the first
image.

A convolution's PE (hw/conv_unit.py) is the same PE: its column table is indexed by the event's input channel and
its entries are taps (weight, row offset, dy, dx); the event brings its origin in the output map, which the PE adds
to each tap's offset at stage 2, where a tap that falls outside the map becomes a zero product into row 0. Its
event may bring an earlier one of its channel and row (hw/event_pairs.py): each entry is then read once and
issued twice, first for that one, then for the event itself.

Where a convolution's input arrives row by row, its PE holds a rolling window of output rows in one bank instead
of two whole maps (PEShape.window). The layer drains a row once every PE has passed it; the drain's read and clear
take one cycle of the PE's issue and go down the pipeline in its place, as an entry that reads its row's sum out
at the product's stage and writes zero back, so that the forwarding orders it with the accumulations around it.
An event is taken once the last row it reaches fits beside the rows not yet drained (window_rows).
"""
from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.numbers import index_bits
from undense.compiler.resources import loaded_at_run_time, yosys_attrs
from undense.hw.conv_unit import Spatial
from undense.hw.dense_unit import Block
from undense.hw.multiplier import Multiplier
from undense.hw.registers import KEEP, data_register, delayed
from undense.hw.shared import build_shared

# Register stages from the multiplier's operands to the product beside the row (hw/multiplier.py's two among them)
MULTIPLIER_STAGES = 4
PRODUCT_STAGE = 2 + MULTIPLIER_STAGES  # where the product meets its row's sum
# An accumulator bank's read that meets a write of its row in the same cycle is never used: the forwarding takes
# the sum instead. So its read-during-write result may be anything, and Yosys need not build Amaranth's
# read-old-data across a block RAM's two ports in logic (a comparator, the write's data and address registered,
# a multiplexer in front of each output bit's register, which pulled that register away from its RAM)
NO_RW_CHECK = {"no_rw_check": 1}


def event_layout(positions: int, value_shape) -> data.StructLayout:
    """An event on a lane: a position there, a value (a code less its edge's offset), and end of image."""
    return data.StructLayout({"index": unsigned(index_bits(positions)), "value": value_shape, "last": 1})


@dataclass(frozen=True)
class PEShape:
    """What a PE's logic depends on (its weights do not): PEs of equal shape share one Verilog module
    (hw/shared.py)."""

    entry_bits: int     # an entry's address
    extra_bits: int     # a column's entry count less one
    row_bits: int       # a row's address
    positions: int      # positions of the widest lane: the event's index width
    value_shape: object  # Amaranth shape of an event's value
    weight_bits: int
    acc_bits: int
    acc_rows: int       # the accumulator banks' depth
    acc_styles: tuple = (None, None)  # placement of the two banks (compiler/resources)
    multiplier: str | None = None  # the vendor's DSP block to build the multiplier from (hw/multiplier.py)
    spatial: Spatial | None = None  # a convolution's PE: entries are taps, rows computed (hw/conv_unit.py)
    registered_reads: bool = False  # the banks' read data go through a register of their own (block RAM)
    acc_slice_bits: int = 0  # each bank as memories this wide, one block RAM each (0: one memory)

    @property
    def window(self) -> bool:
        """The PE accumulates in a rolling window of rows (hw/conv_unit.py), drained through its pipeline."""
        return self.spatial is not None and self.spatial.window_rows > 0

    @property
    def drain_latency(self) -> int:
        """Cycles from the layer's drain issue to a PE's partial sum: the lane's command register, the PE's, its
        read address, the accumulator's read, a register after it where reads are registered, the PE's output.
        A window's drain goes down the pipeline instead, from the PE's command register to the product's stage
        and the output register after it."""
        if self.window:
            return 3 + PRODUCT_STAGE
        return 5 + self.registered_reads

    def entry_layout(self) -> data.StructLayout:
        if self.spatial is None:
            return data.StructLayout({"value": signed(self.weight_bits), "row": unsigned(self.row_bits)})
        steps = signed(self.spatial.step_bits)
        return data.StructLayout({"value": signed(self.weight_bits), "row": signed(self.spatial.offset_bits),
                                  "dy": steps, "dx": steps})

    def column_layout(self) -> data.StructLayout:
        return data.StructLayout({"start": unsigned(self.entry_bits), "extra": unsigned(self.extra_bits)})

    def origin_layout(self) -> data.StructLayout:
        """A convolution's event origin in the output map (hw/conv_unit.py); in a window, with the last output row
        the event reaches, the rows complete once its row has passed, and whether it ends its row."""
        p = self.spatial
        marks = {}
        if self.window:
            rows = unsigned(index_bits(p.height + 1))
            marks = {"top": rows, "done": rows, "ends": 1}
        return data.StructLayout({"y": unsigned(p.y_bits), "x": unsigned(p.x_bits), **marks})

    def looked_up_layout(self) -> data.StructLayout:
        """A convolution's event once its lane has looked it up: indexing its channel, with its origin."""
        plain = event_layout(self.positions, self.value_shape)
        return data.StructLayout({**{name: field.shape for name, field in plain}, "origin": self.origin_layout()})

    def event_layout(self) -> data.StructLayout:
        """An event as the logic takes it; a convolution's is a looked-up event that may bring the value and
        column of an earlier event of its channel and row (`first`, where `paired`: hw/event_pairs.py)."""
        if self.spatial is None:
            return event_layout(self.positions, self.value_shape)
        first = data.StructLayout({"value": self.value_shape, "x": unsigned(self.spatial.x_bits)})
        return data.StructLayout({**{name: field.shape for name, field in self.looked_up_layout()},
                                  "first": first, "paired": 1})


@dataclass(frozen=True)
class PEParams:
    """Everything a PE needs, as plain numbers: no ONNX, no compiler objects."""

    block: Block        # its weights, column by column (hw/dense_unit.py)
    columns: int        # its lane's positions
    positions: int      # positions of the widest lane: the event's index width
    value_shape: object  # Amaranth shape of an event's value
    weight_bits: int
    acc_bits: int
    styles: dict[str, str] | None = None  # placement of "weights", "columns", "acc0", "acc1" (compiler/resources)
    multiplier: str | None = None  # the vendor's DSP block to build the multiplier from (hw/multiplier.py)
    spatial: Spatial | None = None  # a convolution's PE (hw/conv_unit.py)
    registered_reads: bool = False  # its layer's banks are in block RAM (PEShape.registered_reads)
    acc_slice_bits: int = 0  # PEShape.acc_slice_bits

    @property
    def loaded_weights(self) -> bool:
        """The weights are written through the load port at run time instead of being a ROM."""
        return loaded_at_run_time((self.styles or {}).get("weights"))

    def shape(self) -> PEShape:
        """A convolution's logic is indexed by input channel (its lookup stage has found the channel)."""
        indexed = self.positions if self.spatial is None else len(self.block.starts)
        return PEShape(index_bits(len(self.block.entries)), index_bits(max(self.block.counts)),
                       index_bits(self.block.rows), indexed, self.value_shape, self.weight_bits, self.acc_bits,
                       self.block.rows, tuple((self.styles or {}).get(f"logic.acc{bank}") for bank in range(2)),
                       self.multiplier, self.spatial, self.registered_reads, self.acc_slice_bits)

    def entry_layout(self) -> data.StructLayout:
        return self.shape().entry_layout()

    def style(self, memory: str) -> dict[str, str]:
        return yosys_attrs((self.styles or {}).get(memory))


def weight_entries(params: PEParams) -> list[dict]:
    fields = ("value", "row") if params.spatial is None else ("value", "row", "dy", "dx")
    return [dict(zip(fields, entry, strict=True)) for entry in params.block.entries]


def origin_layout(params: PEParams) -> data.StructLayout:
    """What a convolution's lane looks up for each of its positions: the channel and the origin."""
    shape = params.shape()
    return data.StructLayout({"channel": unsigned(index_bits(shape.positions)), "origin": shape.origin_layout()})


def origin_entries(params: PEParams) -> list[dict]:
    names = ("y", "x", "top", "done", "ends")
    return [{"channel": channel, "origin": dict(zip(names, origin, strict=False))}
            for channel, *origin in params.block.origins]


def weight_words(params: PEParams) -> list[int]:
    """The weight memory's contents as the words its load port takes, entry by entry."""
    layout = params.entry_layout()
    return [layout.const(entry).as_value().value for entry in weight_entries(params)]


def memory_signature(shape: PEShape) -> wiring.Signature:
    """How a PE's logic reads its tables: an event's column (asynchronously) and an entry (a cycle after its
    address, where `entry_read`: otherwise the memory holds the entry it read last)."""
    return wiring.Signature({"column_addr": Out(index_bits(shape.positions)), "column": In(shape.column_layout()),
                             "entry_addr": Out(shape.entry_bits), "entry_read": Out(1),
                             "entry": In(shape.entry_layout())})


class ProcessingElement(wiring.Component):
    """A PE: its column table and weights, and its logic (PELogic, with the accumulators), which does not depend on
    them. Each memory is named as hw/dense_unit.py names it."""

    def __init__(self, params: PEParams):
        self.params = params
        p = params
        load = {"load_addr": In(index_bits(len(p.block.entries))), "load_data": In(p.entry_layout()),
                "load_en": In(1)} if p.loaded_weights else {}
        super().__init__({**load, **pe_ports(p.shape())})

    def elaborate(self, platform):
        m = Module()
        p = self.params
        logic = build_shared(m, platform, "logic", PELogic, p.shape())
        inner = {path: value for path, _, value in logic.signature.flatten(logic)}
        for path, member, value in self.signature.flatten(self):
            if path in inner:
                m.d.comb += inner[path].eq(value) if member.flow == In else value.eq(inner[path])
        self.tables(m, logic.memories)
        return m

    def tables(self, m: Module, port):
        """The column table and the weight memory: a ROM each, or the weights in SPRAM, written through the load
        port."""
        p = self.params
        m.submodules.columns = columns = Memory(shape=p.shape().column_layout(), depth=len(p.block.starts),
                                                attrs=p.style("columns"),
                                                init=[{"start": start, "extra": count - 1}
                                                      for start, count in zip(p.block.starts, p.block.counts,
                                                                              strict=True)])
        m.submodules.weights = weights = Memory(shape=p.entry_layout(), depth=len(p.block.entries),
                                                init=[] if p.loaded_weights else weight_entries(p),
                                                attrs=p.style("weights"))
        column, weight_rd = columns.read_port(domain="comb"), weights.read_port()
        m.d.comb += [column.addr.eq(port.column_addr), port.column.eq(column.data), port.entry.eq(weight_rd.data)]
        if p.loaded_weights:  # SPRAM has one port: loading and reading share its address
            weight_wr = weights.write_port()
            shared = Signal.like(weight_rd.addr, name="shared_addr")
            m.d.comb += [shared.eq(Mux(self.load_en, self.load_addr, port.entry_addr)), weight_wr.addr.eq(shared),
                         weight_wr.data.eq(self.load_data), weight_wr.en.eq(self.load_en),
                         weight_rd.addr.eq(shared), weight_rd.en.eq(~self.load_en & port.entry_read)]
        else:
            m.d.comb += [weight_rd.addr.eq(port.entry_addr), weight_rd.en.eq(port.entry_read)]


def bank_ports(m: Module, ports: list, read_next, write_next, writing_next, written, clearing_next=None,
               name: str = "acc0"):
    """A bank's read and write address, chosen a cycle ahead into registers (the ports see flip-flops), and its
    write: the sum `written`, or zero where it clears."""
    read_addr = data_register(ports[0][1].addr.shape(), f"{name}_read_addr")
    write_addr = data_register(ports[0][0].addr.shape(), f"{name}_write_addr")
    writing = Signal(name=f"{name}_writing")
    m.d.sync += [read_addr.eq(read_next), write_addr.eq(write_next), writing.eq(writing_next)]
    data = written
    if clearing_next is not None:
        clearing = delayed(m, clearing_next, f"{name}_clearing")
        data = Mux(clearing, 0, written)
    for write, read, bits in ports:
        m.d.comb += [read.addr.eq(read_addr), read.en.eq(1), write.addr.eq(write_addr), write.data.eq(data[bits]),
                     write.en.eq(writing)]


def pe_ports(shape: PEShape) -> dict:
    """A PE's ports towards its layer: a window's drain takes rows in turn (the first and last position of each
    marked), where banks hold whole images."""
    if shape.window:
        drain = {"ready": Out(1),  # a row is complete here that has not begun to drain
                 "drain_first": In(1), "drain_last": In(1)}
    else:
        drain = {"full": Out(2),  # bank b holds a finished image
                 "release": In(2),  # pulse: bank b has been drained
                 "drain_bank": In(1)}
    return {
        "i": In(stream.Signature(shape.event_layout())),
        **drain,
        "drain_addr": In(shape.row_bits),
        "drain_en": In(1),
        "drain_data": Out(signed(shape.acc_bits)),  # the row asked for drain_latency cycles before
        # one-cycle strobes of the events the power model counts
        "weight_read": Out(1),
        "issued": Out(1),  # an entry into the pipeline, for an event (a pair's entry goes in twice)
        "mac": Out(1),
        "taken": Out(1),
    }


class PELogic(wiring.Component):
    """A PE's logic and its accumulators, which depend on its shape only; its tables are beside it (joined through
    `memories`)."""

    def __init__(self, shape: PEShape):
        self.shape = shape
        super().__init__({**pe_ports(shape), "memories": Out(memory_signature(shape))})

    def elaborate(self, platform):
        m = Module()
        self.issue(m)
        return m

    def issue(self, m: Module):
        """Take events and issue their weight entries, one a cycle; then multiply and accumulate."""
        p = self.shape
        entry_layout = p.entry_layout()
        column = self.memories.column
        bank = Signal()
        valid = Signal()
        # the drain's command comes to many PEs at once, from a register of its lane's that may be far away, so
        # each PE registers it, in registers of its own (kept: synthesis would otherwise share one between every
        # PE, and its load with them)
        drain = Signal(name="drain", attrs=KEEP)
        drain_addr = data_register(self.drain_addr.shape(), "drain_addr_q", KEEP)
        m.d.sync += [drain.eq(self.drain_en), drain_addr.eq(self.drain_addr)]
        # a window's drain takes a cycle of the issue: its read and clear go down the pipeline in its place
        advance = ~drain if p.window else 1
        value, entry_bank = data_register(p.value_shape, "value"), data_register(1, "entry_bank")
        image_end = data_register(1, "image_end")
        origin = None if p.spatial is None else data_register(p.origin_layout(), "origin")
        address = data_register(column.start.shape(), "address")
        left = data_register(column.extra.shape(), "left")  # entries of the column after this one
        # a convolution's event may bring an earlier one of its channel and row (hw/event_pairs.py): each entry,
        # read once, is issued for that one (`first`), then again, its memory not read, for the event itself
        # (a Dense PE's `paired` and `second` stay zero, and synthesis takes them out with what they feed)
        first, paired, second = None, Signal(name="paired"), Signal(name="second")
        if p.spatial is not None:
            first = data_register(self.i.payload.first.shape(), "first")
        again = paired & ~second  # the entry at issue goes in again next cycle
        last_issue = ~left.any() & ~again
        free = ~valid | last_issue
        m.d.comb += [self.memories.column_addr.eq(self.i.payload.index), self.memories.entry_addr.eq(address),
                     self.memories.entry_read.eq(~second), self.taken.eq(self.i.valid & self.i.ready)]
        if p.window:
            image_slot = self.window_rows(m, drain, valid & advance & last_issue & origin.ends, free)
        else:
            # bank b is taken from the last event of an image into it until its release: `full` says so only once
            # the last entry has been added, several cycles later, and an image shorter than that would come back
            # to the bank before
            taken_banks = Signal(2, name="taken_banks")
            m.d.comb += self.i.ready.eq(free & ~Mux(bank, taken_banks[1], taken_banks[0]))
        with m.If(self.taken):
            # an event of value zero (an image's or a row's end, sent though zero) issues one entry, which adds 0
            m.d.sync += [valid.eq(1), address.eq(column.start),
                         left.eq(Mux(self.i.payload.value.any(), column.extra, 0)),
                         value.eq(self.i.payload.value), entry_bank.eq(bank), image_end.eq(self.i.payload.last)]
            if p.spatial is not None:  # the event's origin, beside its value to the entries' stage 2
                m.d.sync += [origin.eq(self.i.payload.origin), first.eq(self.i.payload.first),
                             paired.eq(self.i.payload.paired), second.eq(0)]
            if not p.window:
                with m.If(self.i.payload.last):
                    m.d.sync += [bank.eq(~bank), taken_banks.bit_select(bank, 1).eq(1)]
        with m.Elif(valid & again & advance):
            m.d.sync += second.eq(1)
        with m.Elif(valid & left.any() & advance):
            m.d.sync += [address.eq(address + 1), left.eq(left - 1), second.eq(0)]
        with m.Elif(valid & advance):
            m.d.sync += valid.eq(0)

        # 1: the entry is out of memory; 2: registered (a block RAM's output is slow); then the multiplier's
        # operands, in registers that feed only it, and its product, in a register that only it feeds, on either
        # side of its own (MULTIPLIER_STAGES in all): a design that uses most of the device's DSP blocks has some
        # of them far from their PE's logic, and each long route then runs from register to register with a
        # register free to sit halfway. The accumulator's read is issued two stages before the product arrives;
        # at the product's stage (P) the product and the row's sum meet and the new sum is written back
        valid1, value1 = Signal(), data_register(p.value_shape, "value1")
        bank1, end1 = data_register(1, "bank1"), data_register(1, "end1")
        read1 = Signal(name="read1")
        m.d.sync += [valid1.eq(valid & advance), value1.eq(value if first is None else Mux(again, first.value, value)),
                     bank1.eq(entry_bank), end1.eq(valid & advance & image_end & last_issue), read1.eq(~second)]
        m.d.comb += [self.weight_read.eq(valid1 & read1), self.issued.eq(valid1)]
        valid2, entry2, value2 = Signal(), data_register(entry_layout, "entry2"), data_register(p.value_shape, "value2")
        bank2, end2 = data_register(1, "bank2"), data_register(1, "end2")
        m.d.sync += [valid2.eq(valid1), entry2.eq(self.memories.entry), value2.eq(value1), bank2.eq(bank1),
                     end2.eq(end1)]
        weight2, row2 = entry2.value, entry2.row
        if p.spatial is not None:
            origin1 = data_register(p.origin_layout(), "origin1")
            m.d.sync += [origin1.eq(origin), origin1.x.eq(Mux(again, first.x, origin.x))]
            slot1 = None
            if p.window:
                slot1 = delayed(m, image_slot, "slot1", data=True)
            weight2, row2 = self.scatter(m, entry2, origin1, slot1)
        if p.window:  # the drain's read and clear, in the place of the entry it held back
            drain1, drain2 = Signal(name="drain1"), Signal(name="drain2")
            drain_row1 = data_register(drain_addr.shape(), "drain_row1")
            drain_row2 = data_register(drain_addr.shape(), "drain_row2")
            m.d.sync += [drain1.eq(drain), drain_row1.eq(drain_addr), drain2.eq(drain1), drain_row2.eq(drain_row1)]
            row2 = Mux(drain2, drain_row2, row2)
        m.d.comb += self.mac.eq(valid2 & (weight2 != 0) & (value2 != 0))
        m.submodules.multiplier = multiplier = Multiplier(entry2.value.shape(), p.value_shape, signed(p.acc_bits),
                                                          p.multiplier)
        weight_q = data_register(entry2.value.shape(), "weight_q")
        value_q = data_register(value2.shape(), "value_q")
        product = data_register(signed(p.acc_bits), "product")
        m.d.sync += [weight_q.eq(weight2), value_q.eq(value2), product.eq(multiplier.p)]
        m.d.comb += [multiplier.a.eq(weight_q), multiplier.b.eq(value_q)]
        # what travels beside the product: stage 2 + k at index k
        stages = [(valid2 | drain2 if p.window else valid2, row2, bank2, end2)]
        drains = [drain2] if p.window else []
        late = int(p.registered_reads)  # a read issued a stage earlier, its sum forwarded a stage longer
        for stage in range(3, 4 + MULTIPLIER_STAGES + late):  # and P + 1, where the sum is written back
            before = stages[-1]
            later = (Signal(name=f"valid{stage}"), data_register(unsigned(p.row_bits), f"row{stage}"),
                     data_register(1, f"bank{stage}"), data_register(1, f"end{stage}"))
            m.d.sync += [later[0].eq(before[0]), later[1].eq(before[1]), later[2].eq(before[2]),
                         later[3].eq(before[0] & before[3])]
            stages.append(later)
            if p.window and stage <= PRODUCT_STAGE:
                drains.append(delayed(m, drains[-1], f"drain{stage}"))
        # P + 1: the sum computed at P is written back from a register, so that the adder's loop stays clear of
        # the memory's write port (a bank built from LUT RAM sits wherever the placer finds RAM slices)
        product_stage = PRODUCT_STAGE
        valid_a, row_a, bank_a, _ = stages[product_stage - 1]   # P + 1
        valid_p, row_p, bank_p, end_p = stages[product_stage - 2]   # P: the product's stage
        valid_w, row_w, bank_w, _ = stages[product_stage - 3]   # P - 1: its read data arrive next cycle
        row_r = stages[product_stage - 4 - late][1]  # P - 2 (or P - 3): its read address goes into a register

        # the banks: accumulated into at stage P (read at P - 1, written at P + 1), and drained: a window through
        # the pipeline, two banks by the layer's command (bank_drain)
        # the read data is registered at the memory (nothing but the memory between the address and a register).
        # It misses the sums of the two entries before this one: the one a stage ahead (at P, its sum not yet
        # written: `forward` takes `written`) and the one two ahead (at P + 1, written in the cycle of the read).
        # Where reads are registered (a block RAM, wherever the placer finds one, and its slow output), the read
        # is issued a stage earlier and misses a third sum, that of the entry at P + 2. Which sum a row met again
        # that soon takes is known a cycle ahead, when the entries are at stages P - 1 to P + 2: the later two
        # are chosen then into one register (`bypass`), so that only two selects meet the read data before the
        # adder. Each select is a flip-flop for each bit of the sum (kept apart), placed by its bit's logic: one
        # flip-flop driving the whole width was the 85F's critical path (7.4 ns of routing from it alone)
        width = p.acc_bits
        written, bypass = data_register(signed(width), "written"), data_register(width, "bypass")
        forward, bypassed = data_register(width, "forward", KEEP), data_register(width, "bypassed", KEEP)
        recent = valid_a & (row_a == row_w) & (bank_a == bank_w)  # P + 1, its sum in `written` now
        missed, candidate = recent, written.as_unsigned()
        if p.registered_reads:
            valid_b, row_b, bank_b, _ = stages[product_stage]  # P + 2, its sum in `written_before` now
            written_before = delayed(m, written, "written_before", data=True)
            missed = recent | (valid_b & (row_b == row_w) & (bank_b == bank_w))
            candidate = Mux(recent, written, written_before)
        m.d.sync += [forward.eq((valid_p & (row_p == row_w) & (bank_p == bank_w)).replicate(width)),
                     bypassed.eq(missed.replicate(width)), bypass.eq(candidate)]
        banks = [self.bank(m, index) for index in range(1 if p.window else 2)]
        # one adder for both banks: only the bank of the entry at stage P accumulates (the other drains)
        data_out = []
        for index, ports in enumerate(banks):
            parts = [read.data for _, read, _ in ports]
            if p.registered_reads:
                parts = [delayed(m, bits, f"acc{index}_read_q{part}", data=True) for part, bits in enumerate(parts)]
            data_out.append(Cat(*parts).as_signed())
        stored = (data_out[0] if p.window else Mux(bank_p, data_out[1], data_out[0])).as_unsigned()
        stored = (bypass & bypassed) | (stored & ~bypassed)
        old = ((written.as_unsigned() & forward) | (stored & ~forward)).as_signed()
        with m.If(valid_p):
            m.d.sync += written.eq(old + product)
        if p.window:  # a drain's entry: the row's sum out, and zero written back
            drained_sum = data_register(self.drain_data.shape(), "drained")
            with m.If(drains[-1]):
                m.d.sync += [written.eq(0), drained_sum.eq(old)]
            m.d.comb += self.drain_data.eq(drained_sum)
            bank_ports(m, banks[0], row_r, row_p, valid_p, written)
            return
        self.bank_drain(m, banks, data_out, drain, drain_addr, (row_r, row_p, valid_p, bank_p), written)
        for index in range(2):
            with m.If(self.release[index]):
                m.d.sync += [self.full[index].eq(0), taken_banks[index].eq(0)]
            with m.Elif(valid_p & end_p & (bank_p == index)):
                m.d.sync += self.full[index].eq(1)

    def bank(self, m: Module, index: int) -> list:
        """Bank `index`'s memories, each with its (write port, read port, bits of the sum). A bank wider than a
        block RAM at its depth is split by width, so that each RAM's output goes straight into its register
        (split by depth, Yosys would select between RAMs placed apart before the register)."""
        p = self.shape
        width = p.acc_slice_bits or p.acc_bits
        slices = [(low, min(low + width, p.acc_bits)) for low in range(0, p.acc_bits, width)]
        ports = []
        for part, (low, high) in enumerate(slices):
            name = f"acc{index}" if len(slices) == 1 else f"acc{index}_{part}"
            m.submodules[name] = acc = Memory(shape=unsigned(high - low), depth=p.acc_rows, init=[],
                                              attrs={**yosys_attrs(p.acc_styles[index]), **NO_RW_CHECK})
            ports.append((acc.write_port(), acc.read_port(), slice(low, high)))
        return ports

    def bank_drain(self, m: Module, banks: list, data_out: list, drain, drain_addr, accumulating, written):
        """Two banks: the layer drains one (reads, then clears a cycle later), from the PE's copy of its command,
        while the entry at the product's stage accumulates into the other."""
        row_r, row_p, valid_p, bank_p = accumulating
        drain_bank = data_register(1, "drain_bank_q", KEEP)
        clear, clear_bank = Signal(name="clear"), data_register(1, "clear_bank")
        clear_addr = data_register(drain_addr.shape(), "clear_addr")
        drained_bank = data_register(1, "drained_bank")
        m.d.sync += [drain_bank.eq(self.drain_bank), clear.eq(drain), clear_bank.eq(drain_bank),
                     clear_addr.eq(drain_addr), drained_bank.eq(clear_bank)]
        for index, ports in enumerate(banks):
            draining = drain & (drain_bank == index)
            clearing = clear & (clear_bank == index)
            bank_ports(m, ports, Mux(draining, drain_addr, row_r), Mux(clearing, clear_addr, row_p),
                       clearing | valid_p & (bank_p == index), written, clearing, f"acc{index}")
        drained = data_register(self.drain_data.shape(), "drained")  # from a register to the adders
        if self.shape.registered_reads:
            drained_bank = delayed(m, drained_bank, "drained_bank_q", data=True)
        m.d.sync += drained.eq(Mux(drained_bank, data_out[1], data_out[0]))
        m.d.comb += self.drain_data.eq(drained)

    def scatter(self, m: Module, entry, origin, slot=None):
        """A convolution's tap at stage 2 (hw/conv_unit.py): its row, the event's origin plus the tap's offset,
        and its weight; a tap that falls outside the output map adds zero to row 0. In a window, the row's
        place is the output row (its image's first row at `slot`, wrapping) above the position in the row.
        What depends on the origin alone is computed from stage 1's `origin` and `slot` into registers, so that
        each test and sum at stage 2 is one carry chain from the entry: the tap is inside where
        -y <= dy < height - y, and so for x."""
        p = self.shape.spatial
        stride = p.row_stride
        base = data_register(p.base_bits, "base2")  # the origin's row, y * stride + x, in shifted adds
        m.d.sync += base.eq(sum(origin.y << bit for bit in range(stride.bit_length()) if stride >> bit & 1)
                            + origin.x)
        tests = []
        for axis, size in (("y", p.height), ("x", p.width)):
            step = entry[f"d{axis}"]
            tests += [step >= delayed(m, -origin[axis], f"tap_{axis}_low", data=True),
                      step < delayed(m, size - origin[axis], f"tap_{axis}_high", data=True)]
        inside = Signal(name="tap_inside")
        m.d.comb += inside.eq(Cat(*tests).all())
        weight, row = Signal.like(entry.value, name="tap_weight"), Signal(self.shape.row_bits, name="tap_row")
        place = base + entry.row
        if slot is not None:  # the window row of the origin's row, wrapping
            line = data_register(len(slot), "tap_line")
            m.d.sync += line.eq(origin.y + slot)
            place = Cat(place[:p.window_row_bits], (line + entry.dy)[:len(line)])
        m.d.comb += [weight.eq(Mux(inside, entry.value, 0)), row.eq(Mux(inside, place, 0))]
        return weight, row

    def window_rows(self, m: Module, drain, row_passed, free):
        """A window's bookkeeping, in rows counted from the first image on (wrapping at count_bits): the image
        its events belong to (its first row), the rows complete here (an event that ends its row has issued its
        last entry: the drain's read comes after it down the pipeline), the rows whose drain has begun, and the
        window's room. An event is taken once the last row it reaches fits in the window beside the rows not
        yet drained. Returns the window row of the image's first row, which the event's taps count from."""
        p = self.shape.spatial
        bits, origin = p.count_bits, self.i.payload.origin
        base, finished = Signal(bits, name="image_base"), Signal(bits, name="finished")
        started = Signal(bits, name="started")
        image_slot, done = data_register((p.window_rows - 1).bit_length(), "image_slot"), data_register(bits, "done")
        drain_first, drain_last = data_register(1, "drain_first_q", KEEP), data_register(1, "drain_last_q", KEEP)
        m.d.sync += [drain_first.eq(self.drain_first), drain_last.eq(self.drain_last)]
        # the room, rows drained + R - the image's first row, kept in a register of its own (not wrapping: it
        # stays within a few maps' rows of R), so that the test after the queue is one comparison with the
        # event's last row. Its next value is made ready both ways before the take picks one
        room = Signal(signed(bits), name="room", init=p.window_rows)
        kept, moved = Signal.like(room, name="room_kept"), Signal.like(room, name="room_moved")
        m.d.comb += [kept.eq(room + (drain & drain_last)), moved.eq(kept - p.height),
                     self.i.ready.eq(free & ~drain & (origin.top < room))]
        m.d.sync += room.eq(Mux(self.taken & self.i.payload.last, moved, kept))
        with m.If(self.taken):
            m.d.sync += [image_slot.eq(base), done.eq(base + origin.done)]
            with m.If(self.i.payload.last):
                m.d.sync += base.eq(base + p.height)
        with m.If(row_passed):
            m.d.sync += finished.eq(done)
        with m.If(drain & drain_first):
            m.d.sync += started.eq(started + 1)
        m.d.sync += self.ready.eq(finished != started)
        return image_slot

