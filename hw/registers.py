"""Kinds of register that the units share.

`data_register`: a register of the data path, without reset. Only valid bits and the state that says what the
data mean are reset: a reset on every register routes the reset input to tens of thousands of flip-flops, and
those with a reset cannot share a slice with those without (an ECP5 slice's two flip-flops share one
set/reset), so the placer spreads the logic further.

`delayed`: a signal a cycle later, in a register of its own.

`KEEP`: a register that copies another's value so that each copy drives only a share of its load, kept apart
from the others by synthesis (hw/synth.py moves the attribute onto the flip-flop, where Yosys's opt_merge looks
for it).
"""
from amaranth import Module, Signal

KEEP = {"keep": 1}


def data_register(shape, name: str, attrs: dict | None = None) -> Signal:
    return Signal(shape, name=name, reset_less=True, attrs=attrs)


def delayed(m: Module, signal, name: str, data: bool = False):
    """`signal` a cycle later; in a register without reset where it is `data`."""
    later = data_register(signal.shape(), name) if data else Signal.like(signal, name=name)
    m.d.sync += later.eq(signal)
    return later
