"""Synthesis and place-and-route with the real YoWASP Yosys and nextpnr, against the compiler's estimate.
make test synthesizes each design once: the bundled model on the UP5K as the smallest point of
tests/runtime/test_sweep.py, an ECP5 design as the README's own-model commands (tests/test_readme.py), each checked
against the estimate there."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import undense
from undense.compiler.targets import target as target_named
from undense.errors import DoesNotFit
from undense.hw.synth import (
    FAMILIES,
    check_packed,
    count_cells,
    default_placer,
    owner_of,
    parse_utilisation,
    pin_constraints,
)
from undense.runtime.synthetic import mlp

SYNTH_KEYS = {"target", "lut", "ff", "dsp", "bram", "fmax_mhz", "timing_met", "wall_seconds", "tools", "placement",
              "estimate", "placer"}
DIGITS28 = Path(__file__).parents[2] / "models" / "digits28"


def test_cells_are_counted_by_resource_and_owner():
    netlist = {"modules": {"undense_top": {"cells": {
        "fc2.pe3.weights.0.0": {"type": "DP16KD"}, "fc2.pe3.weights.0.1": {"type": "DP16KD"},
        "fc2.requantizer.$mul$12_MULT18X18D": {"type": "MULT18X18D"}, "x_CCU2C": {"type": "CCU2C"},
        "y": {"type": "LUT4"}, "z": {"type": "TRELLIS_FF"}, "w": {"type": "PFUMX"}}}}}
    used, where = count_cells(netlist, FAMILIES["ecp5"])
    assert (used["lut"], used["ff"], used["dsp"], used["bram"]) == (3, 1, 1, 2)
    assert where == {"bram (DP16KD)": {"fc2.pe3.weights": 2}, "dsp (MULT18X18D)": {"fc2.requantizer": 1}}
    assert owner_of("fc1.pe0.outputs.0.5_DI_CCU2C") == "fc1.pe0.outputs.0.5_DI_CCU2C"
    assert owner_of("fc1.rows.1.0") == "fc1.rows"


def test_clock_and_stream_ports_are_pinned_nearest_first_while_pins_last():
    ports = {"i__payload": {"bits": [2, 3]}, "clk": {"bits": [4]}, "o__valid": {"bits": [5]}}
    lpf = pin_constraints(ports, ("G2", "F2", "G1"))
    assert [line for line in lpf.splitlines() if line.startswith("LOCATE")] == [
        'LOCATE COMP "clk" SITE "G2";', 'LOCATE COMP "i__payload[0]" SITE "F2";',
        'LOCATE COMP "i__payload[1]" SITE "G1";']  # o__valid: no pin left, nextpnr chooses


def synthesize(build_dir, target, *options):
    done = subprocess.run([sys.executable, "-m", "undense", "synth", str(build_dir), "--target", target, *options],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((build_dir / "synth.json").read_text())
    assert SYNTH_KEYS <= report.keys()
    assert report["target"] == target and report["fmax_mhz"] > 0
    assert f"({report['placer']} placer)" in done.stdout
    return report


def test_the_static_placer_takes_a_design_that_fills_the_block_rams(generator_path):
    """The 28x28 generator fills the 85F's block RAMs (static placed it 7 MHz faster); the 8x8 MLP's 97 PEs are
    logic (HeAP placed them 11 MHz faster)."""
    part = target_named("ecp5-85k")
    convolutional = undense.compile(DIGITS28 / "generator.onnx", target_name="ecp5-85k").report["estimate"]
    mlp_grid = undense.compile(generator_path, target_name="ecp5-85k").report["estimate"]
    assert default_placer(convolutional, part.capacity()) == "static"
    assert default_placer(mlp_grid, part.capacity()) == "heap"


@pytest.mark.first
def test_small_unit_synthesizes_as_estimated_with_the_static_placer(tmp_path):
    """nextpnr-ice40's static placer (20 s here); nextpnr-ecp5's has a fixed cost of two minutes on this unit on
    the 25F, so make test synthesizes the ECP5 with HeAP, its default there."""
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    undense.compile(mlp([8, 24], ["Sigmoid"], density=0.4), tmp_path, calibration=x, target_name="ice40-up5k")
    report = synthesize(tmp_path, "ice40-up5k", "--placer", "static")
    assert report["placer"] == "static"
    assert report["dsp"] == report["estimate"]["dsp"] >= 1
    assert report["bram"] == report["estimate"]["bram"] >= 1  # its activation tables are in block RAM
    assert any(kind.startswith("bram") and any(o.endswith("requantizer.table") for o in owners)
               for kind, owners in report["placement"].items())


def test_synthesis_for_another_family_asks_to_compile_again(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    undense.compile(mlp([8, 24], ["Relu"], density=0.4), tmp_path, calibration=x, target_name="ecp5-25k")
    done = subprocess.run([sys.executable, "-m", "undense", "synth", str(tmp_path), "--target", "ice40-up5k"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("compiled for ecp5-25k: its memories are placed for ECP5, not ICE40; compile it again with --target "
            "ice40-up5k") in " ".join(done.stderr.split())


PACKED = """Info: Device utilisation:
Info: 	         ICESTORM_LC:    5633/   5280   106%
Info: 	        ICESTORM_RAM:      29/     30    96%
Info: 	               SB_IO:      24/     39    61%
"""  # nextpnr-ice40 --pack-only on the 8x8 generator at 4 bits folded for the UP5K (5 PEs)


def test_a_packed_design_over_the_part_is_refused_naming_the_site():
    utilisation = parse_utilisation(PACKED)
    assert utilisation == {"ICESTORM_LC": (5633, 5280), "ICESTORM_RAM": (29, 30), "SB_IO": (24, 39)}
    with pytest.raises(DoesNotFit, match="needs 5,633 ICESTORM_LC of its 5,280 .3,130 LUTs and 3,237 flip-flops"):
        check_packed(utilisation, target_named("ice40-up5k"), {"lut": 3130, "ff": 3237})
    check_packed({"ICESTORM_LC": (5280, 5280)}, target_named("ice40-up5k"), {"lut": 1, "ff": 1})  # full is fine


@pytest.mark.slow
def test_the_4_bit_generator_the_fold_lets_onto_the_up5k_is_refused_before_placement(tmp_path, generator_path):
    """Its 3,130 LUTs and 3,237 flip-flops pair so little that they need 5,633 logic cells of 5,280: without the
    packer's check, the static placer iterated for over 40 minutes here without end."""
    undense.compile(generator_path, tmp_path, bits=4, target_name="ice40-up5k")
    done = subprocess.run([sys.executable, "-m", "undense", "synth", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "does not fit the iCE40UP5K: packed by nextpnr it needs 5,633 ICESTORM_LC of its 5,280" in done.stderr
