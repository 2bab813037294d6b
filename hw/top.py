"""The accelerator's top level, assembled from a compiled graph: the only hardware module that reads
compiler output. One input stream (the latent codes, one a cycle), one output stream (the pixel codes, as many
a transfer as the output layer has groups), and where weights sit in SPRAM (iCE40 UP5K) a byte stream `w` that
must deliver `weight_bytes` first.

Each layer's unit is named after its ONNX layer, so the names survive into the Verilog.
"""
import re

from amaranth import Cat, Module, Shape, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.compiler import activity
from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.numbers import QuantParams
from undense.compiler.resources import (
    block_slice_bits,
    event_queue_depth,
    product_slice_bits,
    registered_reads,
    requant_shift_base,
    requant_shift_bits,
    row_constants,
    row_repeat,
    skip_fifos,
)
from undense.errors import UndenseError
from undense.hw import conv_unit, dense_unit
from undense.hw.dense_unit import lane_features, lane_positions, positions
from undense.hw.edges import Indexer, Packer
from undense.hw.elementwise import EVENTS as ADD_EVENTS
from undense.hw.elementwise import AddParams, ElementwiseAdd
from undense.hw.event_dense import EVENT_BITS, DenseParams, EventDense, GroupRows
from undense.hw.event_dense import EVENTS as DENSE_EVENTS
from undense.hw.fifo import StreamFIFO
from undense.hw.fork import StreamFork
from undense.hw.pe import PEParams, weight_words
from undense.hw.requantizer import RequantParams
from undense.hw.stream_register import StreamRegister
from undense.hw.weight_loader import LOAD_PORT_BITS, WeightLoader, load_bytes


def code_shape(params: QuantParams | None, acc_bits: int = 0):
    """The Amaranth shape of a tensor's codes (a raw accumulator when there are no parameters)."""
    if params is None:
        return signed(acc_bits)
    return signed(params.bits) if params.signed else unsigned(params.bits)


def verilog_name(name: str) -> str:
    """An ONNX layer name as a Verilog identifier: `/fc1/Gemm` -> `fc1_Gemm` (no double underscores,
    which Verilator would escape)."""
    cleaned = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", name)).strip("_") or "layer"
    return cleaned if not cleaned[0].isdigit() else f"l_{cleaned}"


def value_shape(graph: QGraph, tensor: str, acc_bits: int = 0):
    """The Amaranth shape of the values of `tensor`'s events: its codes less its edge's offset."""
    params, offset = graph.quant[tensor], graph.edges[tensor].offset
    if params is None:
        return signed(acc_bits)
    return Shape.cast(range(params.qmin - offset, params.qmax - offset + 1))


def dense_params(graph: QGraph, node: QDense, family: str | None = None, primitives: bool = False) -> DenseParams:
    """Every number the unit of one Dense layer needs. The unit adds w x (value - offset) over the events, so the
    bias takes back what the input's offset removed; sums wrap at acc_bits, exact since the result fits. For an
    FPGA `family`, each memory is pinned where the compiler's resource estimate puts it, and with `primitives`
    the multipliers are the family's DSP blocks with their own registers (hw/multiplier.py)."""
    fold = node.fold
    lanes, groups = fold.lanes, fold.groups
    in_block, out = graph.edges[node.input].block, graph.edges[node.output]
    styles = {} if family is None else node.fold.placement
    raw = node.multiplier is None
    in_shape = value_shape(graph, node.input)
    blocks, spatial = pe_blocks(graph, node)
    registered = registered_reads(styles.items())

    def pe(lane: int, group: int) -> PEParams:
        part = blocks(lane, group)
        slices = block_slice_bits(part.rows, node.acc_bits, family) if registered else 0
        return PEParams(part, positions(node.in_features, lanes, lane, in_block),
                        lane_positions(node.in_features, lanes, in_block), in_shape, node.weight_bits, node.acc_bits,
                        {memory: styles.get(f"pe{lane * groups + group}.{memory}")
                         for memory in ("weights", "columns", "logic.acc0", "logic.acc1")},
                        family if primitives else None, spatial, registered, slices)

    pes = tuple(pe(lane, group) for lane in range(lanes) for group in range(groups))
    constants, repeat = row_constants(graph, node), row_repeat(graph, node)
    rows = tuple(GroupRows(tuple(constants[row] for row in lane_features(node.out_features, groups, group,
                                                                         out.block, out.row_width)[::repeat]))
                 for group in range(groups))
    row_positions = 0
    if out.row_width:  # the map travels row by row: its rows' ends are sent
        row_positions = positions(node.out_features, groups, 0, out.block) // node.geometry.out_shape[1]
    table_style = next((style for name, style in styles.items() if name.endswith("requantizer.table")), None)
    requant = RequantParams(
        acc_bits=node.acc_bits, out_shape=code_shape(graph.quant[node.output], node.acc_bits),
        shift_bits=requant_shift_bits(node), shift_base=requant_shift_base(node),
        zero_point=0 if raw else node.requant.zero_point, clamp=None if raw else node.clamp,
        table=None if node.table is None else tuple(int(v) for v in node.table),
        table_offset=0 if raw else node.requant.qmin, table_style=table_style,
        slice_bits=product_slice_bits(family), multiplier=family if primitives else None)
    return DenseParams(lanes, groups, node.in_features, node.out_features, pes, rows, requant, in_shape,
                       value_shape(graph, node.output, node.acc_bits), out.offset, out.sparse,
                       event_queue_depth(family), styles, in_block, out.block, repeat, row_positions)


def pe_blocks(graph: QGraph, node: QDense):
    """Each PE's block by (lane, group) (hw/dense_unit.py, or a convolution's taps: hw/conv_unit.py), and the
    addressing its PEs share (None for a Dense layer)."""
    lanes, groups = node.fold.lanes, node.fold.groups
    if not node.is_convolution:
        codes = node.dense_codes()
        return (lambda lane, group: dense_unit.block(codes, lanes, groups, lane, group)), None
    taps, flow = conv_unit.scatter_taps(node.geometry, node.kernel), activity.conv_flow(graph, node)
    return ((lambda lane, group: conv_unit.block(node.geometry, taps, lanes, groups, lane, group, flow)),
            conv_unit.spatial(node.geometry, taps, groups, flow))


def add_params(graph: QGraph, node: QAdd) -> AddParams:
    q, edges = node.requant, [graph.edges[tensor] for tensor in node.inputs]
    out = graph.edges[node.output]
    return AddParams(out.lanes, node.features, tuple(value_shape(graph, t) for t in node.inputs),
                     tuple(edge.offset for edge in edges), node.zero_points, node.multipliers, node.shift,
                     q.zero_point, (q.qmin, q.qmax), value_shape(graph, node.output), out.offset, out.sparse)


def unit_events(node: QDense | QAdd) -> tuple[str, ...]:
    """The events the unit of this layer counts."""
    return DENSE_EVENTS if isinstance(node, QDense) else ADD_EVENTS


def event_ports(graph: QGraph) -> dict[str, tuple[str, str]]:
    """Top-level counter port -> (layer, event), for an accelerator built with count_events."""
    return {f"ev_{verilog_name(node.name)}_{event}": (node.name, event)
            for node in graph.nodes for event in unit_events(node)}


def output_lanes(graph: QGraph) -> int:
    """Codes per transfer on the output stream."""
    return graph.edges[graph.output].lanes


def check_buildable(graph: QGraph) -> None:
    """The hardware scatters convolutions (hw/conv_unit.py), but not every kind: say so for the first it cannot."""
    for node in graph.nodes:
        reason = isinstance(node, QDense) and node.is_convolution and conv_unit.unsupported(node.geometry)
        if reason:
            raise UndenseError(
                f"layer '{node.name}' is {reason}, so rtl, sim, synth and cocotb cannot build this model; run it "
                "with `undense run DIR --backend golden` or `undense generate DIR --backend golden`, or export the "
                "model with an Upsample (or a ConvTranspose) in place of the strided Conv")


class Accelerator(wiring.Component):
    """The graph's layers joined by event lanes: forks where a tensor feeds several layers, and FIFOs on the
    short side of every residual Add, deep enough for the long side's latency. The input takes one code a
    cycle; the output gives `output_lanes` codes a transfer, in index order."""

    def __init__(self, graph: QGraph, count_events: bool = False, family: str | None = None,
                 primitives: bool = False):
        """With `count_events`, every layer counts its activity onto top-level ports (event_ports); for an
        FPGA `family`, memories are pinned where the compiler's resource estimate puts them, and with
        `primitives` the multipliers are its DSP blocks, registers included (for synthesis: no simulator
        models them)."""
        check_buildable(graph)
        self.family = family
        self.graph = graph
        self.count_events = count_events
        self.units = {node.name: EventDense(dense_params(graph, node, family, primitives), count_events)
                      if isinstance(node, QDense) else ElementwiseAdd(add_params(graph, node), count_events)
                      for node in graph.nodes}
        last = graph.nodes[-1]
        self.out_code = code_shape(graph.quant[graph.output], getattr(last, "acc_bits", 0))
        counters = {port: Out(EVENT_BITS) for port in event_ports(graph)} if count_events else {}
        weights = {"w": In(stream.Signature(LOAD_PORT_BITS))} if self.loaded_weights() else {}
        super().__init__({
            "i": In(stream.Signature(code_shape(graph.quant[graph.input]))),
            "o": Out(stream.Signature(unsigned(output_lanes(graph) * self.out_code.width))),
            **weights,
            **counters,
        })

    def loaded_weights(self) -> list[PEParams]:
        """The PEs whose weights the `w` stream loads, in the order it loads them."""
        return [params for unit in self.units.values() if isinstance(unit, EventDense) for params in unit.loaded()]

    def word_bits(self) -> int:
        """The width of a word the loader writes: the widest loaded weight entry."""
        return max(params.entry_layout().size for params in self.loaded_weights())

    def weight_bytes(self) -> bytes:
        """What the `w` stream must deliver before the first image (nothing when every weight is in a ROM)."""
        if not self.loaded_weights():
            return b""
        return load_bytes([word for params in self.loaded_weights() for word in weight_words(params)],
                          self.word_bits())

    def elaborate(self, platform):
        m = Module()
        graph = self.graph
        readers = {tensor: 0 for tensor in graph.sizes}
        for node in graph.nodes:
            for tensor in node.inputs:
                readers[tensor] += 1
        readers[graph.output] += 1
        m.submodules.input_register = input_register = StreamRegister(self.i.payload.shape())
        m.submodules.output_register = output_register = StreamRegister(self.o.payload.shape())
        if self.loaded_weights():
            self.load_weights(m, input_register)
        else:
            wiring.connect(m, wiring.flipped(self.i), input_register.i)
        wiring.connect(m, output_register.o, wiring.flipped(self.o))
        m.submodules.indexer = indexer = Indexer(self.i.payload.shape(), graph.sizes[graph.input])
        wiring.connect(m, input_register.o, indexer.i)
        source = {graph.input: [indexer.o]}
        taps: dict[str, list] = {}

        def tap(tensor: str) -> list:
            """The next set of `tensor`'s lanes for one of its readers (through forks if it has several)."""
            if readers[tensor] == 1:
                return source[tensor]
            if tensor not in taps:
                forks = []
                for lane, stream_out in enumerate(source[tensor]):
                    fork = StreamFork(stream_out.payload.shape(), readers[tensor])
                    m.submodules[f"{verilog_name(tensor)}_fork{lane}"] = fork
                    wiring.connect(m, stream_out, fork.i)
                    forks.append(fork)
                taps[tensor] = [[getattr(fork, f"o{index}") for fork in forks] for index in range(readers[tensor])]
            return taps[tensor].pop(0)

        for node in graph.nodes:
            name = verilog_name(node.name)
            unit = m.submodules[name] = self.units[node.name]
            if isinstance(node, QDense):
                for lane, stream_in in enumerate(tap(node.input)):
                    wiring.connect(m, stream_in, unit.i[lane])
            else:
                self.join_add(m, node, unit, tap)
            source[node.output] = list(unit.o)
            if self.count_events:
                for event in unit_events(node):
                    m.d.comb += getattr(self, f"ev_{name}_{event}").eq(getattr(unit, event))
        lanes = tap(graph.output)
        m.submodules.packer = packer = Packer(lanes[0].payload.shape(), graph.sizes[graph.output], len(lanes),
                                              self.out_code.width)
        for lane, stream_out in enumerate(lanes):
            wiring.connect(m, stream_out, packer.i[lane])
        wiring.connect(m, packer.o, output_register.i)
        return m

    def join_add(self, m: Module, node: QAdd, unit: ElementwiseAdd, tap):
        """An Add's two inputs, lane by lane, the shorter path's through a FIFO."""
        skips = skip_fifos(self.graph, node)
        name = verilog_name(node.name)
        for port, tensor in zip((unit.a, unit.b), node.inputs, strict=True):
            for lane, stream_in in enumerate(tap(tensor)):
                if tensor in skips:
                    style = None if self.family is None else node.fold.placement[f"{node.name}_skip{lane}.storage"]
                    buffer = StreamFIFO(stream_in.payload.shape(), skips[tensor], style)
                    m.submodules[f"{name}_skip{lane}"] = buffer
                    wiring.connect(m, stream_in, buffer.i)
                    stream_in = buffer.o
                wiring.connect(m, stream_in, port[lane])

    def load_weights(self, m: Module, input_register: StreamRegister):
        """The `w` stream, through a register, into the loader; images wait until it is done."""
        m.submodules.weight_register = weight_register = StreamRegister(self.w.payload.shape())
        m.submodules.weight_loader = loader = WeightLoader([len(p.block.entries) for p in self.loaded_weights()],
                                                           self.word_bits())
        wiring.connect(m, wiring.flipped(self.w), weight_register.i)
        wiring.connect(m, weight_register.o, loader.i)
        enables = iter(loader.en)
        for unit in self.units.values():
            if isinstance(unit, EventDense) and unit.loaded():
                m.d.comb += [unit.load_addr.eq(loader.addr), unit.load_data.eq(loader.data),
                             unit.load_en.eq(Cat(next(enables) for _ in unit.loaded()))]
        m.d.comb += [input_register.i.payload.eq(self.i.payload), input_register.i.valid.eq(self.i.valid & loader.done),
                     self.i.ready.eq(input_register.i.ready & loader.done)]
