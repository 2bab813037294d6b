"""The whole accelerator, cycle-accurate: bit-exact against golden, cycles near the ideal, hangs caught."""
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import undense
from undense.errors import UndenseError
from undense.hw.emit import emit_verilog
from undense.hw.top import Accelerator
from undense.sim.simulate import images_for_steady_state, simulate


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, generator_path):
    return undense.compile(generator_path, tmp_path_factory.mktemp("sim") / "digits",
                           images_per_second=20_000)  # one PE a layer: a small design


def test_sim_command_is_bit_exact_and_near_the_prediction(compiled):
    done = subprocess.run([sys.executable, "-m", "undense", "sim", str(compiled.directory), "-n", "64"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((compiled.directory / "sim.json").read_text())
    assert report["images"] == 64 and report["mismatches"] == 0
    assert report["cycles_per_image"] <= 1.15 * report["ideal_cycles_per_image"]
    assert abs(report["cycles_per_image"] - report["predicted_cycles_per_image"]) <= 0.1 * report["cycles_per_image"]
    spread = report["cycles_per_image_distribution"]
    assert spread["p1"] <= spread["p50"] <= spread["p99"] and spread["mean"] == report["cycles_per_image"]
    assert report["sim_cycles_per_second"] > 0 and report["first_image_latency_cycles"] > report["cycles_per_image"]
    assert "bit-exact" in done.stdout
    assert report["event_mismatches"] == [] and report["events"] == report["events_predicted"]
    # zeros after the ReLUs never arrive: fewer MACs than the nonzero weights of 64 images
    assert report["events_total"]["macs"] < 0.75 * 64 * sum(n.weight.nnz for n in compiled.graph.nodes)


def test_a_steady_state_from_as_few_images_as_it_needs(compiled):
    """Three dense layers hold 7 images when the pipeline is full, so the second half of the gaps is past the
    filling from 13 images on; fewer are marked as no steady state."""
    assert images_for_steady_state(compiled.graph) == 13
    few, many = (compiled.simulate(compiled.random_inputs(count)).report for count in (13, 40))
    assert few["steady_state"] and few["images_needed_for_steady_state"] == 13
    # images differ in their work: the two runs' steady states agree within the prediction's tolerance
    assert few["cycles_per_image"] == pytest.approx(many["cycles_per_image"], rel=0.1)
    assert not compiled.simulate(compiled.random_inputs(12)).report["steady_state"]


def test_rtl_backend_equals_golden(compiled):
    x = compiled.random_inputs(20, seed=5)
    np.testing.assert_array_equal(compiled.run(x, backend="rtl"), compiled.run(x, backend="golden"))


def test_fst_waveform(compiled, tmp_path):
    """FST; `undense sim --wave` writes the VCD (tests/runtime/test_cli.py)."""
    wave = tmp_path / "run.fst"
    compiled.simulate(compiled.random_inputs(2), wave=wave)
    assert wave.stat().st_size > 1000


def test_a_hang_names_the_stalled_stream(compiled, tmp_path):
    with pytest.raises(UndenseError, match="hung.*input stream"):
        simulate(compiled.graph, 1, compiled.random_inputs(50), tmp_path)


def test_rtl_that_differs_from_golden_is_caught(compiled, tmp_path):
    """RTL from a deliberately altered layer, compared with the intact model's golden, must not pass."""
    first = compiled.graph.nodes[0]
    broken = compiled.graph.with_nodes([replace(first, bias=first.bias + (1 << 10)), *compiled.graph.nodes[1:]])
    emit_verilog(broken, tmp_path / "rtl")
    result = simulate(compiled.graph, compiled.report["predicted_cycles_per_image"], compiled.random_inputs(4),
                      tmp_path)
    assert result.report["mismatches"] > 0
    assert result.report["first_mismatch"]["layer"] == "fc3"


def test_run_command_with_the_rtl_backend(compiled, tmp_path):
    x = compiled.random_inputs(10, seed=6)
    np.save(tmp_path / "x.npy", x)
    for backend in ("rtl", "golden"):
        done = subprocess.run([sys.executable, "-m", "undense", "run", str(compiled.directory), "--input",
                               str(tmp_path / "x.npy"), "-o", str(tmp_path / f"{backend}.npy"), "--backend", backend],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "golden.npy"))


@pytest.fixture(scope="module")
def on_up5k(tmp_path_factory, generator_path):
    """The bundled model at 8 bits on the iCE40 UP5K: its big weight memories sit in SPRAM, loaded at run time."""
    return undense.compile(generator_path, tmp_path_factory.mktemp("up5k") / "digits", target_name="ice40-up5k")


def test_weights_in_spram_are_loaded_before_the_first_image(on_up5k):
    result = on_up5k.simulate(on_up5k.random_inputs(16, seed=2))
    assert result.report["mismatches"] == 0 and result.report["event_mismatches"] == []
    in_spram = [memory for layer in on_up5k.report["layers"] for memory in layer.get("memories", [])
                if memory["placement"] == "huge"]
    assert in_spram  # the estimate put weights in SPRAM, and the hardware built a port to load them
    word_bytes = -(-max(memory["width"] for memory in in_spram) // 8)
    loaded = (on_up5k.directory / "rtl" / "weights.bin").read_bytes()
    assert len(loaded) == word_bytes * sum(memory["depth"] for memory in in_spram)


def test_outputs_depend_on_the_weights_loaded(on_up5k, tmp_path):
    """The same design loaded with every weight off by one (the lowest bit of each word's value flipped) must
    not match golden."""
    emit_verilog(on_up5k.graph, tmp_path / "rtl", family="ice40")
    weights = tmp_path / "rtl" / "weights.bin"
    altered = bytearray(weights.read_bytes())
    word_bytes = -(-max(params.entry_layout().size for params in Accelerator(on_up5k.graph, family="ice40")
                        .loaded_weights()) // 8)
    altered[::word_bytes] = bytes(byte ^ 1 for byte in altered[::word_bytes])  # the value is in each word's low bits
    weights.write_bytes(bytes(altered))
    result = simulate(on_up5k.graph, on_up5k.report["predicted_cycles_per_image"], on_up5k.random_inputs(4),
                      tmp_path, family="ice40")
    assert result.report["mismatches"] > 0
