"""One Verilog module for all the components built alike.

Amaranth writes a module for every instance, so a layer's eighty PEs, built from the same numbers, are eighty
copies of one module: Amaranth builds each one's netlist and Verilator parses and optimises each one again (most
of the time `undense rtl` and the first `undense sim` take). Where the Verilog is emitted (hw/emit.py), the
elaboration runs with a `ModuleLibrary` as its platform: a component made with `build_shared` is then converted
once per distinct constructor call and every copy becomes an instance of that one module. Under Amaranth's
simulator (no library) the components are elaborated in place as usual. Synthesis flattens the hierarchy, so the
netlist is the same either way.
"""
import re

from amaranth import ClockSignal, Const, Module, ResetSignal
from amaranth.back import rtlil
from amaranth.hdl import Instance, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring


class ModuleLibrary:
    """The modules shared so far, as RTLIL text to be written after the top level's."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.modules: dict[str, tuple[str, set[str]]] = {}  # key -> module name, its clock and reset ports
        self.texts: list[str] = []

    def instance(self, component: wiring.Component, key: str) -> Instance:
        """An instance of the one module for `key`, its ports the signals of `component` (never elaborated)."""
        ports = signature_ports(component)
        if key not in self.modules:
            name = f"{self.prefix}_{type(component).__name__.lower()}{len(self.modules)}"
            text = rtlil.convert(component, name=name, platform=self, emit_src=False,
                                 ports={port: (value, flow) for port, (flow, value) in ports.items()})
            # only the top level is a top: the rest are instantiated (Verilator and Yosys are told the top anyway)
            self.texts.append(text.replace("attribute \\top 1\n", ""))
            clocking = set(re.findall(r"wire width 1 input \d+ +\\(clk|rst)\n", module_text(text, name)))
            self.modules[key] = name, clocking
        else:
            component._MustUse__silence = True  # Amaranth's own way to say an elaboratable is not elaborated
        name, clocking = self.modules[key]
        connections = {"i_clk": ClockSignal()} if "clk" in clocking else {}
        if "rst" in clocking:
            connections["i_rst"] = ResetSignal()
        for port, (flow, value) in ports.items():
            connections[f"{'i' if flow == PortDirection.Input else 'o'}_{port}"] = value
        return Instance(name, **connections)


def signature_ports(component: wiring.Component) -> dict:
    """The component's ports as Amaranth's converter names them, without the constant ones (an always-ready
    stream's `ready`): name -> (direction, signal)."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if isinstance(value, ValueCastable) else value
        if not isinstance(value, Const):
            flow = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
            ports["__".join(map(str, path))] = flow, value
    return ports


def module_text(text: str, name: str) -> str:
    """The RTLIL of module `name` in `text` (without its submodules)."""
    start = text.index(f"module \\{name}\n")
    return text[start:text.index("\nend\n", start) + 5]


def build_shared(m: Module, platform, name: str, kind, *args):
    """`kind(*args)` as submodule `name` of `m`, returned for its ports; where a `ModuleLibrary` is the
    platform, as an instance of the module every `kind(*args)` with equal arguments shares."""
    component = kind(*args)
    if isinstance(platform, ModuleLibrary):
        key = f"{kind.__module__}.{kind.__qualname__}{args!r}"
        m.submodules[name] = platform.instance(component, key)
    else:
        m.submodules[name] = component
    return component
