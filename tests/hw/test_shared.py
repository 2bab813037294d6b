"""hw/shared.py: components built alike are one Verilog module, instantiated where each sits."""
import re
import subprocess
from itertools import pairwise

from amaranth import Module
from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from undense.hw.emit import WAIVERS, instances
from undense.hw.fifo import StreamFIFO
from undense.hw.shared import ModuleLibrary, build_shared
from undense.sim.tools import verilator_env, verilator_root


class Chain(wiring.Component):
    """Three queues in a row, the first two built alike."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        queues = [build_shared(m, platform, f"q{index}", StreamFIFO, 8, depth)
                  for index, depth in enumerate((4, 4, 8))]
        wiring.connect(m, wiring.flipped(self.i), queues[0].i)
        for before, after in pairwise(queues):
            wiring.connect(m, before.o, after.i)
        wiring.connect(m, queues[-1].o, wiring.flipped(self.o))
        return m


def emitted(tmp_path):
    library = ModuleLibrary("chain")
    top = rtlil.convert(Chain(), name="chain", platform=library, emit_src=False)
    path = tmp_path / "chain.v"
    path.write_text(verilog._convert_rtlil_text("\n".join([top, *library.texts])))
    return path


def test_components_built_alike_share_one_module(tmp_path):
    text = emitted(tmp_path).read_text()
    assert sorted(set(re.findall(r"^module (chain_streamfifo\d+)", text, re.M))) == ["chain_streamfifo0",
                                                                                "chain_streamfifo1"]
    placed = {path: module.split("(", 1)[0] for path, module in instances(text, "chain") if path}
    assert placed == {"q0": "module chain_streamfifo0", "q1": "module chain_streamfifo0",
                      "q2": "module chain_streamfifo1"}


def test_the_shared_modules_are_wired_as_verilator_expects(tmp_path):
    done = subprocess.run([str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--top-module",
                           "chain", str(WAIVERS), str(emitted(tmp_path))],
                          capture_output=True, text=True, env=verilator_env())
    assert done.returncode == 0, done.stderr


def test_without_a_library_the_components_are_elaborated_in_place():
    fragment = Fragment.get(Chain(), None)
    assert [type(sub).__name__ for sub, _name, _src in fragment.subfragments] == ["Fragment"] * 3
