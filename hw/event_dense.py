"""The event-driven Dense unit: one compiled Dense layer in hardware (hw/dense_unit.py describes it).

    lane l ──▶ register ──▶ queue ──▶ PE (l, 0) ─┐
                       └──▶ queue ──▶ PE (l, 1) ─┼─▶ drain: group g adds its lanes' partial sums ──▶ requantizer
                                       ...       ┘          ──▶ nonzero? ──▶ queue ──▶ output lane g

Every lane's events go to the PEs of its column of the grid, each through a small queue so that a PE with more
work on an event does not hold the others up. When every PE has an image in a bank, the groups drain it in
lockstep, one row position a cycle, while the PEs fill the other bank with the next image.
"""
from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from undense.compiler.numbers import index_bits
from undense.compiler.resources import yosys_attrs
from undense.hw.adder_tree import AdderTree
from undense.hw.dense_unit import (
    BRANCH_QUEUES,
    BRANCHED_QUEUE_DEPTH,
    OUTPUT_FIFO_DEPTH,
    drain_cycles,
    lane_positions,
    positions,
)
from undense.hw.event_pairs import EventPairs
from undense.hw.fifo import StreamFIFO
from undense.hw.pe import PEParams, ProcessingElement, event_layout, origin_entries, origin_layout
from undense.hw.registers import KEEP, data_register, delayed
from undense.hw.requantizer import Requantizer, RequantParams
from undense.hw.shared import build_shared
from undense.hw.stream_lookup import StreamLookup
from undense.hw.stream_register import StreamRegister

EVENT_BITS = 48
# What a layer counts when built with count_events (hw/dense_unit.EVENTS says what each touches)
EVENTS = ("stream_in", "event_reads", "weight_reads", "macs", "acc_updates", "drain_reads", "requantized",
          "table_reads", "stream_out")


@dataclass(frozen=True)
class GroupRows:
    """Requantization constants of a group's rows, by position: (bias, multiplier, stored shift) each."""
    rows: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class DenseParams:
    lanes: int
    groups: int
    in_features: int
    out_features: int
    pes: tuple[PEParams, ...]        # PE (l, g) at l * groups + g
    rows: tuple[GroupRows, ...]      # per group (one per `row_repeat` rows)
    requant: RequantParams
    in_value_shape: object
    out_value_shape: object
    out_offset: int                  # the code an output event's value is relative to
    sparse_out: bool                 # zeros (code == out_offset) stay home
    queue_depth: int = 16
    styles: dict[str, str] | None = None  # placement of each memory by its name in the unit (hw/dense_unit.py)
    in_block: int = 1   # runs of indices per lane on the input edge and the output (dense_unit.lane_features)
    out_block: int = 1
    row_repeat: int = 1  # rows in a row that share their constants (GroupRows holds one set each)
    out_row_positions: int = 0  # positions of a row of each group's map, where it travels row by row: the last
    # of each is sent even where it is zero (0: the map travels otherwise)

    @property
    def window(self):
        """A convolution's rolling window (hw/conv_unit.Spatial), or None where its PEs hold whole maps."""
        spatial = self.pes[0].spatial
        return spatial if spatial is not None and spatial.window_rows else None

    @property
    def branched_commands(self) -> bool:
        """A lane with more PEs than a register should drive across the chip takes the drain's commands through
        a second register stage, one register for every BRANCH_QUEUES PEs, as its events (EventDense.distribute)."""
        return self.groups > BRANCH_QUEUES

    @property
    def drain_latency(self) -> int:
        """Cycles from the drain's issue to the PEs' partial sums: the PE's (ProcessingElement.drain_latency), and
        the second command stage where there is one."""
        return self.pes[0].shape().drain_latency + self.branched_commands

    @property
    def steps(self) -> int:
        return drain_cycles(self.out_features, self.groups, self.out_block)

    def in_layout(self):
        return event_layout(lane_positions(self.in_features, self.lanes, self.in_block), self.in_value_shape)

    def out_layout(self):
        return event_layout(self.steps, self.out_value_shape)

    def style(self, memory: str) -> dict[str, str]:
        return yosys_attrs((self.styles or {}).get(memory))


class EventDense(wiring.Component):
    def __init__(self, params: DenseParams, count_events: bool = False):
        """With `count_events`, the unit counts its activity (EVENTS) on outputs of those names: for simulation,
        where the power model reads them; a synthesized unit leaves them out."""
        self.params = params
        self.count_events = count_events
        counters = {name: Out(EVENT_BITS) for name in EVENTS} if count_events else {}
        super().__init__({"i": In(stream.Signature(params.in_layout())).array(params.lanes),
                          "o": Out(stream.Signature(params.out_layout())).array(params.groups),
                          **counters, **self.load_ports()})

    def loaded(self) -> list[PEParams]:
        """The PEs whose weights are loaded at run time, in the order of the load port's enables."""
        return [pe for pe in self.params.pes if pe.loaded_weights]

    def load_ports(self) -> dict:
        loaded = self.loaded()
        if not loaded:
            return {}
        return {"load_addr": In(max(index_bits(len(p.block.entries)) for p in loaded)),
                "load_data": In(max(p.entry_layout().size for p in loaded)), "load_en": In(len(loaded))}

    def elaborate(self, platform):
        m = Module()
        p = self.params
        pes = [ProcessingElement(params) for params in p.pes]
        for index, pe in enumerate(pes):
            m.submodules[f"pe{index}"] = pe
        for enable, pe in enumerate(pe for pe in pes if pe.params.loaded_weights):
            m.d.comb += [pe.load_addr.eq(self.load_addr), pe.load_data.eq(self.load_data),
                         pe.load_en.eq(self.load_en[enable])]
        self.distribute(m, platform, pes)
        issue = Signal()
        draining = (self.drain_images if p.window is None else self.drain_rows)(m, pes, issue)
        rows = self.drain(m, platform, pes, issue, draining)
        if self.count_events:
            self.count(m, pes, issue, rows)
        return m

    def distribute(self, m: Module, platform, pes: list[ProcessingElement]):
        """Each lane to its PEs, each through a queue; where the lane has several PEs, through a register stage
        that moves when every one of its queues has room. A convolution's lane first looks its events up."""
        p = self.params
        layout = pes[0].i.payload.shape()
        for lane, its_pes in enumerate(by_lane(pes, p.groups)):
            queues = [build_shared(m, platform, f"queue{index}", StreamFIFO, layout, p.queue_depth,
                                   (p.styles or {}).get(f"queue{index}.storage"))
                      for index in range(lane * p.groups, (lane + 1) * p.groups)]
            for queue, pe in zip(queues, its_pes, strict=True):
                wiring.connect(m, queue.o, pe.i)
            events = wiring.flipped(self.i[lane])
            if p.pes[0].spatial is not None:
                events = self.look_up_origins(m, lane, events, layout)
            if p.groups == 1:
                wiring.connect(m, events, queues[0].i)
                continue
            register = build_shared(m, platform, f"lane{lane}", StreamRegister, layout)
            wiring.connect(m, events, register.i)
            # whether every queue has room, from registers: a queue that held at most depth - 4 values (output
            # register included) two cycles ago has room now, whatever arrived since. The queues sit by their PEs,
            # spread over the chip: their readys gathered in the cycle were the 85F's critical path, so each
            # queue's test is registered beside it, and the lane's AND of those a cycle later
            # Where a lane feeds many queues (and they are deep enough), its events reach them through a second
            # stage, a register for each few queues placed among them: one register's fanout to queues spread
            # over the 85F was routed 13.5 ns in one hop (the 28x28 generator's up1). An event then takes a cycle
            # longer to arrive, so a queue's room is counted one place shorter
            branches = in_branches(queues)
            branched = len(branches) > 1 and p.queue_depth >= BRANCHED_QUEUE_DEPTH
            room = all_registered(m, [queue.level < p.queue_depth - 3 - branched for queue in queues],
                                  [f"queue{lane * p.groups + index}_room" for index in range(p.groups)],
                                  f"lane{lane}_room")
            m.d.comb += register.o.ready.eq(room)
            for branch, its_queues in enumerate(branches if branched else [queues]):
                valid, payload = register.o.valid & room, register.o.payload
                if branched:
                    valid, payload = Signal(name=f"lane{lane}_branch{branch}_valid", attrs=KEEP), \
                        data_register(layout, f"lane{lane}_branch{branch}_event", KEEP)
                    m.d.sync += [valid.eq(register.o.valid & room), payload.eq(register.o.payload)]
                for queue in its_queues:
                    m.d.comb += [queue.i.valid.eq(valid), queue.i.payload.eq(payload)]

    def look_up_origins(self, m: Module, lane: int, events, layout):
        """A convolution's events, each with its channel and its origin in the output map, looked up by position
        (hw/conv_unit.py) in a table the lane's PEs share, then two of a channel and row at a time where they
        come one after the other (hw/event_pairs.py), from a register."""
        p = self.params
        pe = p.pes[lane * p.groups]
        lookup = m.submodules[f"lane{lane}_origins"] = StreamLookup(
            p.in_layout(), origin_layout(pe), origin_entries(pe), p.style(f"lane{lane}_origins.table"))
        wiring.connect(m, events, lookup.i)
        pairs = m.submodules[f"lane{lane}_pairs"] = EventPairs(pe.shape().looked_up_layout(), layout)
        event, word = lookup.o.payload.event, lookup.o.payload.found
        m.d.comb += [pairs.i.valid.eq(lookup.o.valid), lookup.o.ready.eq(pairs.i.ready),
                     pairs.i.payload.index.eq(word.channel), pairs.i.payload.origin.eq(word.origin),
                     pairs.i.payload.value.eq(event.value), pairs.i.payload.last.eq(event.last)]
        return pairs.o

    def drain_images(self, m: Module, pes: list[ProcessingElement], issue):
        """Once every PE holds the image in a bank, its row positions in order, every group at once, while
        `issue` says the output queues have room. Whether the PEs are full is registered in two steps, first
        beside each lane's PEs, then for the layer: an AND over every PE would gather the whole layer in a cycle."""
        p = self.params
        bank, draining = Signal(name="drain_bank"), Signal(name="draining")
        step = Signal(range(p.steps), name="step")
        lane_pes = by_lane(pes, p.groups)
        ready_banks = [every_lane(m, lane_pes, lambda pe, b=b: pe.full[b], f"bank{b}_ready") for b in range(2)]
        starting, finishing = Signal(), Signal()
        m.d.comb += [starting.eq(~draining & Mux(bank, ready_banks[1], ready_banks[0])),
                     finishing.eq(issue & (step == p.steps - 1))]
        with m.If(starting):
            m.d.sync += [draining.eq(1), step.eq(0)]
        with m.Elif(issue):
            m.d.sync += step.eq(step + 1)
            with m.If(finishing):
                m.d.sync += [draining.eq(0), bank.eq(~bank)]
        for lane, its_pes in enumerate(lane_pes):
            self.command(m, lane, its_pes, {"drain_en": issue, "drain_addr": step, "drain_bank": bank,
                                            "release": Mux(finishing, Cat(~bank, bank), 0)},
                         pulses={"drain_en", "release"})
        return draining

    def drain_rows(self, m: Module, pes: list[ProcessingElement], issue):
        """A rolling window's rows in turn, each once every PE has it complete: its positions in order, every
        group at once, while `issue` says the output queues have room. Each PE's drain takes a cycle of its
        issue and goes down its pipeline (hw/pe.py). Whether the PEs have the next row complete is registered
        beside each lane's PEs, then for the layer; a PE's answer counts the row begun a few cycles after the
        row's first position, which a row of MIN_ROW_POSITIONS has long drained by its last."""
        p, window = self.params, self.params.window
        per_row = p.steps // window.height
        draining = Signal(name="draining")
        position = Signal(range(per_row), name="row_position")
        slot = Signal((window.window_rows - 1).bit_length(), name="window_slot")
        lane_pes = by_lane(pes, p.groups)
        with m.If(~draining & every_lane(m, lane_pes, lambda pe: pe.ready, "row_ready")):
            m.d.sync += [draining.eq(1), position.eq(0)]
        with m.Elif(issue):
            m.d.sync += position.eq(position + 1)
            with m.If(position == per_row - 1):
                m.d.sync += [draining.eq(0), slot.eq(slot + 1)]
        row = Cat(position.as_unsigned()[:window.window_row_bits] if window.window_row_bits else [], slot)
        for lane, its_pes in enumerate(lane_pes):
            self.command(m, lane, its_pes, {"drain_en": issue, "drain_addr": row, "drain_first": position == 0,
                                            "drain_last": position == per_row - 1}, pulses={"drain_en"})
        return draining

    def command(self, m: Module, lane: int, its_pes: list[ProcessingElement], ports: dict, pulses: set[str]):
        """The drain's command to a lane's PEs (`ports`: each PE port's value; those named in `pulses` in
        registers with reset, the rest data, without), a cycle later, through registers (the PEs register it
        again themselves): a copy for each lane, near its PEs, so that no one flip-flop drives every PE of the
        layer across the chip, and where the lane has many PEs a second stage, a copy for each few of them.
        Synthesis would merge copies of one value back into one, so they are kept (hw/synth.py)."""
        def registered(values: dict, prefix: str) -> dict:
            held = {}
            for port, value in values.items():
                shape, name = getattr(its_pes[0], port).shape(), f"{prefix}_{port}"
                held[port] = Signal(shape, name=name, attrs=KEEP) if port in pulses else \
                    data_register(shape, name, KEEP)
                m.d.sync += held[port].eq(value)
            return held

        held = registered(ports, f"lane{lane}_command")
        for branch, branch_pes in enumerate(in_branches(its_pes)):
            near = registered(held, f"lane{lane}_branch{branch}_command") if self.params.branched_commands else held
            for pe in branch_pes:
                m.d.comb += [getattr(pe, port).eq(value) for port, value in near.items()]

    def drain(self, m: Module, platform, pes: list[ProcessingElement], issue, draining):
        """The drain's positions, `issue`d every group at once: each group's lanes summed, requantized, and sent
        when nonzero. Returns the strobes the counters need. Every decision from registers: the PEs are many and
        spread over the chip, so whether the output queues have room is registered in two steps, first beside
        each group's queue, then for the layer (an AND over every group's sum and comparison would gather the
        whole layer in a cycle); room is two cycles late, so counted two short. Each group counts the positions
        in flight to its queue itself, from its copy of the issue (a cycle late, so one more short): one counter
        beside the drain's control reached every group's comparison across the chip, the 28x28 generator's
        critical path on the 85F once its lookups were registered (10.71 ns)."""
        p = self.params
        queues = [build_shared(m, platform, f"g{g}_fifo", StreamFIFO, p.out_layout(), OUTPUT_FIFO_DEPTH,
                               (p.styles or {}).get(f"g{g}_fifo.storage")) for g in range(p.groups)]

        # the partial sums are out the PEs' drain_latency cycles after the issue; each group's go through an adder tree,
        # with the row's constants beside them, into the group's requantizer. Each group takes the issue through a
        # register copy of its own, and times its sums, constants, tree and requantizer from that copy: from one
        # register, the valid bits (identical in every group, so merged by synthesis into one chain) would be the
        # clock enables of every group's registers, spread over the chip
        rows, in_flight = [], []
        for group in range(p.groups):
            issued = Signal(name=f"g{group}_issue", attrs=KEEP)
            m.d.sync += issued.eq(issue)
            # positions issued (as this group saw them) and not yet at its queue
            in_flight.append(Signal(range(OUTPUT_FIFO_DEPTH + 1), name=f"g{group}_in_flight"))
            valid = issued
            for stage in range(p.drain_latency - 1):
                valid = delayed(m, valid, f"g{group}_drain_valid{stage}")
            tree = build_shared(m, platform, f"g{group}_sum", AdderTree, p.lanes, p.requant.acc_bits,
                                p.requant.row_layout())
            m.d.comb += [tree.i.valid.eq(valid), tree.i.payload.row.eq(self.group_constants(m, group, issued))]
            m.d.comb += [tree.i.payload.sums[lane].eq(pes[lane * p.groups + group].drain_data)
                         for lane in range(p.lanes)]
            requantizer = build_shared(m, platform, f"g{group}_requantizer", Requantizer, p.requant)
            wiring.connect(m, tree.o, requantizer.i)
            rows.append(self.send(m, group, requantizer.o, queues[group]))
            m.d.sync += in_flight[group].eq(in_flight[group] + issued - requantizer.o.valid)
        room = all_registered(m, [queue.level + flying + 3 < OUTPUT_FIFO_DEPTH - 1
                                  for queue, flying in zip(queues, in_flight, strict=True)],
                              [f"g{group}_room" for group in range(p.groups)], "room")
        m.d.comb += issue.eq(draining & room)
        for group, queue in enumerate(queues):
            wiring.connect(m, queue.o, wiring.flipped(self.o[group]))
        return rows

    def group_constants(self, m: Module, group: int, issued):
        """The group's row constants at each issued step (`issued`: the group's copy of the issue, a cycle
        late), out of their memory and registered to meet the PEs' sums. Each group counts the steps itself, beside
        its memory (wrapping after the last, where every image ends): one counter's bits would have to reach the
        read logic of every group's memory, spread over the chip, in the cycle. Where the constants repeat (a
        convolution's, `row_repeat` rows a channel), the memory holds one set each and a second counter steps through
        them."""
        p = self.params
        depth = p.steps // p.row_repeat
        step = Signal(range(depth), name=f"g{group}_step")
        advance = issued
        if p.row_repeat > 1:
            within = Signal(range(p.row_repeat), name=f"g{group}_within")
            advance = issued & (within == p.row_repeat - 1)
            with m.If(issued):
                m.d.sync += within.eq(Mux(within == p.row_repeat - 1, 0, within + 1))
        with m.If(advance):
            m.d.sync += step.eq(Mux(step == depth - 1, 0, step + 1))
        stored = [{"bias": bias, "multiplier": multiplier, "shift": shift}
                  for bias, multiplier, shift in p.rows[group].rows]
        stored += [{"bias": 0, "multiplier": 0, "shift": 0}] * (depth - len(stored))
        m.submodules[f"g{group}_rows"] = rows = Memory(shape=p.requant.row_layout(), depth=depth, init=stored,
                                                       attrs=p.style(f"g{group}_rows"))
        read = rows.read_port()
        m.d.comb += [read.addr.eq(step), read.en.eq(issued)]
        constants = read.data
        for stage in range(p.drain_latency - 2):
            constants = delayed(m, constants, f"g{group}_constants{stage}", data=True)
        return constants

    def send(self, m: Module, group: int, codes, queue: StreamFIFO):
        """The group's codes (a stream without back-pressure: the drain leaves room for it), each as an event: its
        value relative to the edge's offset; dropped where the edge is sparse and the value zero, unless it is the
        group's last row. Returns the strobe of a row requantized (a group with fewer rows than steps has none at
        its last)."""
        p = self.params
        rows = positions(p.out_features, p.groups, group, p.out_block)
        position = Signal(range(p.steps), name=f"g{group}_position")
        with m.If(codes.valid):
            m.d.sync += position.eq(Mux(position == p.steps - 1, 0, position + 1))
        value = Signal(p.out_value_shape, name=f"g{group}_value")
        last = position == rows - 1
        sent_anyway = last
        if p.out_row_positions:  # and the last of each row
            within = Signal(range(p.out_row_positions), name=f"g{group}_row_position")
            with m.If(codes.valid):
                m.d.sync += within.eq(Mux(within == p.out_row_positions - 1, 0, within + 1))
            sent_anyway = last | (within == p.out_row_positions - 1)
        m.d.comb += value.eq(codes.payload - p.out_offset)
        row = Signal(name=f"g{group}_row")
        m.d.comb += row.eq(codes.valid & (position < rows))
        keep = row & ((value != 0) | sent_anyway) if p.sparse_out else row
        m.d.comb += [queue.i.valid.eq(keep), queue.i.payload.index.eq(position),
                     queue.i.payload.value.eq(value), queue.i.payload.last.eq(last)]
        return row

    def count(self, m: Module, pes: list[ProcessingElement], issue, rows: list):
        """Add this cycle's events to the counters, each per-PE sum built once."""
        p = self.params

        def total(strobes):
            summed = Signal(range(len(strobes) + 1))
            m.d.comb += summed.eq(sum(strobes))
            return summed

        reads = total([pe.weight_read for pe in pes])
        requantized = total(rows)
        increments = {
            "stream_in": total([lane.valid & lane.ready for lane in self.i]),
            "event_reads": total([pe.taken for pe in pes]), "weight_reads": reads,
            "macs": total([pe.mac for pe in pes]), "acc_updates": total([pe.issued for pe in pes]),
            "drain_reads": requantized * p.lanes, "requantized": requantized,
            "table_reads": requantized if p.requant.table is not None else 0,
            "stream_out": total([lane.valid & lane.ready for lane in self.o]),
        }
        for name, increment in increments.items():
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + increment)


def in_branches(items: list) -> list[list]:
    """A lane's queues or PEs, BRANCH_QUEUES to a branch: those one register of its second stage feeds."""
    return [items[first:first + BRANCH_QUEUES] for first in range(0, len(items), BRANCH_QUEUES)]


def by_lane(pes: list, groups: int) -> list[list]:
    """A layer's PEs, lane by lane: each lane's `groups` PEs, one for each group of output positions."""
    return [pes[first:first + groups] for first in range(0, len(pes), groups)]


def every_lane(m: Module, lane_pes: list, flag, name: str):
    """Whether `flag(pe)` held a cycle ago at every PE: registered beside each lane's PEs (lane{i}_`name`), then
    ANDed for the layer."""
    lanes = [Signal(name=f"lane{lane}_{name}") for lane in range(len(lane_pes))]
    m.d.sync += [held.eq(Cat(flag(pe) for pe in its_pes).all()) for held, its_pes in zip(lanes, lane_pes, strict=True)]
    return Cat(lanes).all()


def all_registered(m: Module, tests: list, names: list[str], name: str):
    """Whether every test held two cycles ago: each in a register of its own (`names`), beside what it tests,
    and their AND in a register `name` a cycle later, so that no one cycle gathers tests spread over the chip."""
    held = [Signal(name=test_name) for test_name in names]
    every = Signal(name=name)
    m.d.sync += [register.eq(test) for register, test in zip(held, tests, strict=True)]
    m.d.sync += every.eq(Cat(held).all())
    return every
