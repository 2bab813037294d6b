"""FPGA targets the compiler folds for, read from data/targets.json (every figure with its source)."""
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from undense.errors import UndenseError

DEFAULT_TARGET = "ecp5-85k"
AUTO_TARGET = "auto"  # the compiler picks the target (compiler/pipeline.py, choose_target)


@dataclass(frozen=True)
class Target:
    name: str
    family: str
    device: str
    lut: int
    dsp: int
    bram_blocks: int
    bram_block_bits: int
    spram_blocks: int
    spram_block_bits: int
    clock_mhz: float
    lut_fill: float  # the share of the LUTs the fold grows a design into (data/targets.json says why)
    source: str
    nextpnr: tuple[str, ...]  # nextpnr's device and package flags

    def capacity(self) -> dict[str, int]:
        """What the resource estimate is checked against (compiler/resources.py)."""
        return {"lut": self.lut, "dsp": self.dsp, "bram": self.bram_blocks, "spram": self.spram_blocks}

    def growth_budget(self) -> dict[str, int]:
        """What the fold grows a design within: the capacity, with only `lut_fill` of the LUTs."""
        return {**self.capacity(), "lut": int(self.lut * self.lut_fill)}

    def size(self) -> tuple[int, int, int]:
        """What "smaller" means between targets: fewer LUTs, then DSPs, then block RAM. Within the ECP5 family
        a smaller part never has more static power (sim/data/energy.json)."""
        return self.lut, self.dsp, self.bram_blocks * self.bram_block_bits + self.spram_blocks * self.spram_block_bits


@cache
def targets() -> dict[str, Target]:
    data = json.loads((Path(__file__).parent / "data" / "targets.json").read_text())
    return {name: Target(name=name, **{**fields, "nextpnr": tuple(fields["nextpnr"])})
            for name, fields in data.items() if not name.startswith("_")}


def by_size(family: str | None = None) -> list[Target]:
    """The targets (of `family`, or all), smallest first."""
    return sorted((t for t in targets().values() if family in (None, t.family)), key=Target.size)


def target(name: str) -> Target:
    if name not in targets():
        raise UndenseError(f"unknown target '{name}'; choose one of: {', '.join(targets())}")
    return targets()[name]
