"""The accelerator's top level, assembled from a compiled graph: the only hardware module that reads
compiler output. One input stream (the latent codes, one a cycle), one output stream (the pixel codes),
and where weights sit in SPRAM (iCE40 UP5K) a byte stream `w` that must deliver `weight_bytes` first.

Each Dense layer is a SparseMVAU named after its ONNX layer, so the names survive into the Verilog.
"""
import re

import numpy as np
from amaranth import Cat, Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.numbers import QuantParams
from undense.compiler.resources import (
    dense_memories,
    memory_style,
    product_slice_bits,
    requant_shift_base,
    requant_shift_bits,
    skip_fifos,
)
from undense.hw.elementwise import EVENTS as ADD_EVENTS
from undense.hw.elementwise import ElementwiseAdd
from undense.hw.fifo import StreamFIFO
from undense.hw.fork import StreamFork
from undense.hw.pe import PEParams, weight_words
from undense.hw.requantizer import RequantParams
from undense.hw.sparse_mvau import EVENT_BITS, OutputRow, SparseMVAU
from undense.hw.sparse_mvau import EVENTS as MVAU_EVENTS
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


def mvau_for(graph: QGraph, node: QDense, count_events: bool = False, family: str | None = None) -> SparseMVAU:
    """The unit of one Dense layer: each PE's entries, where each output row lives, how it is requantized.

    For an FPGA `family`, each memory is pinned where the compiler's resource estimate puts it."""
    weight, fold = node.weight, node.fold
    styles = {} if family is None else {
        use.name.removeprefix(f"{node.name}."): use.style
        for use in dense_memories(graph, node, fold.pe_of_row, fold.pe, family)}
    raw = node.multiplier is None
    pes, rows = [], [None] * node.out_features
    in_shape = code_shape(graph.quant[node.input])
    for element in range(fold.pe):
        owned = np.flatnonzero(fold.pe_of_row == element)
        entries = []
        for position, row in enumerate(owned):
            rows[row] = OutputRow(element, position, int(node.bias[row]), 0 if raw else int(node.multiplier[row]),
                                  0 if raw else int(node.shift[row]))
            start, end = weight.row_ptr[row], weight.row_ptr[row + 1]
            if start == end:
                entries.append((0, 0, True))
            for k in range(start, end):
                entries.append((int(weight.values[k]), int(weight.columns[k]), k == end - 1))
        pes.append(PEParams(entries=tuple(entries), row_count=len(owned), in_features=weight.in_features,
                            in_shape=in_shape, weight_bits=node.weight_bits, acc_bits=node.acc_bits,
                            styles={memory: styles.get(f"pe{element}.{memory}")
                                    for memory in ("weights", "inputs", "outputs")}))
    requant = RequantParams(
        acc_bits=node.acc_bits, out_shape=code_shape(graph.quant[node.output], node.acc_bits),
        shift_bits=requant_shift_bits(node), shift_base=requant_shift_base(node),
        zero_point=0 if raw else node.requant.zero_point, clamp=None if raw else node.clamp,
        table=None if node.table is None else tuple(int(v) for v in node.table),
        table_offset=0 if raw else node.requant.qmin, table_style=styles.get("requantizer.table"),
        slice_bits=product_slice_bits(family))
    return SparseMVAU(pes, rows, requant, in_shape, count_events, styles.get("rows"), styles.get("fifo.storage"))


def add_unit(graph: QGraph, node: QAdd, count_events: bool = False) -> ElementwiseAdd:
    q = node.requant
    return ElementwiseAdd(code_shape(graph.quant[node.inputs[0]]), code_shape(graph.quant[node.inputs[1]]),
                          code_shape(q), node.zero_points, node.multipliers, node.shift, q.zero_point,
                          (q.qmin, q.qmax), count_events)


def unit_events(node: QDense | QAdd) -> tuple[str, ...]:
    """The events the unit of this layer counts."""
    return MVAU_EVENTS if isinstance(node, QDense) else ADD_EVENTS


def event_ports(graph: QGraph) -> dict[str, tuple[str, str]]:
    """Top-level counter port -> (layer, event), for an accelerator built with count_events."""
    return {f"ev_{verilog_name(node.name)}_{event}": (node.name, event)
            for node in graph.nodes for event in unit_events(node)}


class Accelerator(wiring.Component):
    """The graph's layers joined by streams: forks where a tensor feeds several layers, and a FIFO on
    the short side of every residual Add, deep enough for the long side's latency."""

    def __init__(self, graph: QGraph, count_events: bool = False, family: str | None = None):
        """With `count_events`, every layer counts its activity onto top-level ports (event_ports); for an
        FPGA `family`, memories are pinned where the compiler's resource estimate puts them."""
        self.family = family
        self.graph = graph
        self.count_events = count_events
        self.units = {node.name: mvau_for(graph, node, count_events, family) if isinstance(node, QDense)
                      else add_unit(graph, node, count_events) for node in graph.nodes}
        last = graph.nodes[-1]
        counters = {port: Out(EVENT_BITS) for port in event_ports(graph)} if count_events else {}
        weights = {"w": In(stream.Signature(LOAD_PORT_BITS))} if self.loaded_weights() else {}
        super().__init__({
            "i": In(stream.Signature(code_shape(graph.quant[graph.input]))),
            "o": Out(stream.Signature(code_shape(graph.quant[graph.output], getattr(last, "acc_bits", 0)))),
            **weights,
            **counters,
        })

    def loaded_weights(self) -> list[PEParams]:
        """The PEs whose weights the `w` stream loads, in the order it loads them."""
        return [params for unit in self.units.values() if isinstance(unit, SparseMVAU) for params in unit.loaded()]

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
        source = {graph.input: input_register.o}
        taps: dict[str, list] = {}

        def tap(tensor: str):
            """The next stream of `tensor` for one of its readers (through a fork if it has several)."""
            if readers[tensor] == 1:
                return source[tensor]
            if tensor not in taps:
                fork = StreamFork(source[tensor].payload.shape(), readers[tensor])
                m.submodules[f"{verilog_name(tensor)}_fork"] = fork
                wiring.connect(m, source[tensor], fork.i)
                taps[tensor] = [getattr(fork, f"o{index}") for index in range(readers[tensor])]
            return taps[tensor].pop(0)

        for node in graph.nodes:
            name = verilog_name(node.name)
            unit = m.submodules[name] = self.units[node.name]
            if isinstance(node, QDense):
                wiring.connect(m, tap(node.input), unit.i)
            else:
                skips = skip_fifos(graph, node)
                for port, tensor in zip((unit.a, unit.b), node.inputs, strict=True):
                    stream_in = tap(tensor)
                    if tensor in skips:
                        width = stream_in.payload.shape().width
                        style = None if self.family is None else memory_style(skips[tensor] - 1, width, self.family,
                                                                              rom=False)
                        buffer = StreamFIFO(stream_in.payload.shape(), skips[tensor], style)
                        m.submodules[f"{name}_skip"] = buffer
                        wiring.connect(m, stream_in, buffer.i)
                        stream_in = buffer.o
                    wiring.connect(m, stream_in, port)
            source[node.output] = unit.o
            if self.count_events:
                for event in unit_events(node):
                    m.d.comb += getattr(self, f"ev_{name}_{event}").eq(getattr(unit, event))
        wiring.connect(m, tap(graph.output), output_register.i)
        return m

    def load_weights(self, m: Module, input_register: StreamRegister):
        """The `w` stream, through a register, into the loader; images wait until it is done."""
        m.submodules.weight_register = weight_register = StreamRegister(self.w.payload.shape())
        m.submodules.weight_loader = loader = WeightLoader([len(p.entries) for p in self.loaded_weights()],
                                                           self.word_bits())
        wiring.connect(m, wiring.flipped(self.w), weight_register.i)
        wiring.connect(m, weight_register.o, loader.i)
        enables = iter(loader.en)
        for unit in self.units.values():
            if isinstance(unit, SparseMVAU) and unit.loaded():
                m.d.comb += [unit.load_addr.eq(loader.addr), unit.load_data.eq(loader.data),
                             unit.load_en.eq(Cat(next(enables) for _ in unit.loaded()))]
        m.d.comb += [input_register.i.payload.eq(self.i.payload), input_register.i.valid.eq(self.i.valid & loader.done),
                     self.i.ready.eq(input_register.i.ready & loader.done)]
