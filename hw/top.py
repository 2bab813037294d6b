"""The accelerator's top level, assembled from a compiled graph: the only hardware module that reads
compiler output. One input stream (the latent codes, one a cycle), one output stream (the pixel codes).

Each Dense layer is a SparseMVAU named after its ONNX layer, so the names survive into the Verilog.
"""
import re

import numpy as np
from amaranth import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.numbers import QuantParams
from undense.hw.pe import PEParams, RowRequant
from undense.hw.sparse_mvau import SparseMVAU


def code_shape(params: QuantParams | None, acc_bits: int = 0):
    """The Amaranth shape of a tensor's codes (a raw accumulator when there are no parameters)."""
    if params is None:
        return signed(acc_bits)
    return signed(params.bits) if params.signed else unsigned(params.bits)


def verilog_name(name: str) -> str:
    """An ONNX layer name as a Verilog identifier: `/fc1/Gemm` -> `fc1_Gemm`."""
    cleaned = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_") or "layer"
    return cleaned if not cleaned[0].isdigit() else f"l_{cleaned}"


def mvau_for(graph: QGraph, node: QDense) -> SparseMVAU:
    """The unit of one Dense layer: each PE's entries and rows, and where each output row lives."""
    weight, fold = node.weight, node.fold
    raw = node.multiplier is None
    pes, row_owner = [], [None] * node.out_features
    for element in range(fold.pe):
        rows = np.flatnonzero(fold.pe_of_row == element)
        entries, requants = [], []
        for position, row in enumerate(rows):
            row_owner[row] = (element, position)
            start, end = weight.row_ptr[row], weight.row_ptr[row + 1]
            if start == end:
                entries.append((0, 0, True))
            for k in range(start, end):
                entries.append((int(weight.values[k]), int(weight.columns[k]), k == end - 1))
            requants.append(RowRequant(int(node.bias[row]), 0 if raw else int(node.multiplier[row]),
                                       0 if raw else int(node.shift[row])))
        pes.append(PEParams(
            entries=tuple(entries), rows=tuple(requants), in_features=weight.in_features,
            in_shape=code_shape(graph.quant[node.input]), weight_bits=node.weight_bits, acc_bits=node.acc_bits,
            out_shape=code_shape(graph.quant[node.output], node.acc_bits),
            zero_point=0 if raw else node.requant.zero_point, clamp=None if raw else node.clamp,
            table=None if node.table is None else tuple(int(v) for v in node.table),
            table_offset=0 if raw else node.requant.qmin))
    return SparseMVAU(pes, row_owner, code_shape(graph.quant[node.input]),
                      code_shape(graph.quant[node.output], node.acc_bits))


class Accelerator(wiring.Component):
    """A chain of layers from the graph input to its output."""

    def __init__(self, graph: QGraph):
        if any(isinstance(node, QAdd) for node in graph.nodes):
            raise NotImplementedError("residual Add layers are not in hardware yet")
        self.graph = graph
        last = graph.nodes[-1]
        super().__init__({
            "i": In(stream.Signature(code_shape(graph.quant[graph.input]))),
            "o": Out(stream.Signature(code_shape(graph.quant[graph.output], getattr(last, "acc_bits", 0)))),
        })

    def elaborate(self, platform):
        m = Module()
        units = []
        for node in self.graph.nodes:
            unit = mvau_for(self.graph, node)
            m.submodules[verilog_name(node.name)] = unit
            units.append(unit)
        wiring.connect(m, wiring.flipped(self.i), units[0].i)
        for before, after in zip(units, units[1:], strict=False):
            wiring.connect(m, before.o, after.i)
        wiring.connect(m, units[-1].o, wiring.flipped(self.o))
        return m
