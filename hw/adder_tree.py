"""A group's partial sums, one from each lane's PE, added in a registered binary tree: a stream in, a stream out,
a fixed number of cycles later (adder_tree_latency), without back-pressure. Each sum travels with the constants of
its row, which the tree only delays."""
from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.registers import data_register


def adder_tree_latency(lanes: int) -> int:
    """Cycles from a group's partial sums to their total: one a level of the tree, at least one."""
    return max(1, (lanes - 1).bit_length())


class AdderTree(wiring.Component):
    def __init__(self, lanes: int, acc_bits: int, row_layout):
        self.lanes, self.acc_bits = lanes, acc_bits
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"sums": data.ArrayLayout(signed(acc_bits), lanes),
                                                        "row": row_layout}), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({"acc": signed(acc_bits), "row": row_layout}),
                                      always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        sums, valid, row = [self.i.payload.sums[lane] for lane in range(self.lanes)], self.i.valid, self.i.payload.row
        for _ in range(adder_tree_latency(self.lanes)):
            level = [data_register(signed(self.acc_bits), f"sum{len(sums)}_{k}") for k in range((len(sums) + 1) // 2)]
            for total, k in zip(level, range(0, len(sums), 2), strict=True):
                pair = sums[k:k + 2]
                m.d.sync += total.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
            later_valid, later_row = Signal(name=f"valid{len(sums)}"), data_register(row.shape(), f"row{len(sums)}")
            m.d.sync += [later_valid.eq(valid), later_row.eq(row)]
            sums, valid, row = level, later_valid, later_row
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.acc.eq(sums[0]), self.o.payload.row.eq(row)]
        return m
