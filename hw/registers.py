"""Kinds of register that the units share.

`data_register`: a register of the data path, without reset. Only valid bits and the state that says what the
data mean are reset: a reset on every register routes the reset input to tens of thousands of flip-flops, and
those with a reset cannot share a slice with those without (an ECP5 slice's two flip-flops share one
set/reset), so the placer spreads the logic further.

`KEEP`: a register that copies another's value so that each copy drives only a share of its load, kept apart
from the others by synthesis (hw/synth.py moves the attribute onto the flip-flop, where Yosys's opt_merge looks
for it).
"""
from amaranth import Signal

KEEP = {"keep": 1}


def data_register(shape, name: str, attrs: dict | None = None) -> Signal:
    return Signal(shape, name=name, reset_less=True, attrs=attrs)
