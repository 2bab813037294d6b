"""The FPGA energy model on a hand-worked case, its ranges and the one-image figure, the same design across
parts, the model against the public iCE40 measurements it was set from, the ASIC floor, the sources of every
coefficient, and the `undense power` command."""
import json
import subprocess
import sys

import numpy as np
import pytest

import undense
from undense.compiler import activity, golden
from undense.compiler.targets import by_size, target, targets
from undense.runtime.power import clocked
from undense.sim import energy


def entry(value, low=None, high=None):
    """A coefficient whose range is half to twice its value unless given."""
    return {"low": value / 2 if low is None else low, "value": value, "high": 2 * value if high is None else high,
            "source": "test"}


TABLE = {"dsp_multiply_pj": entry(2.56), "toggle_rate": entry(0.5, 0.5, 0.5), "bram_read_pj": entry(5.0),
         "bram_write_pj": entry(6.0), "spram_read_pj": entry(7.0), "spram_write_pj": entry(8.0),
         "lutram_read_pj_per_bit": entry(0.5), "lutram_write_pj_per_bit": entry(0.25), "logic_pj_per_bit": entry(0.1),
         "logic_multiply_pj_per_partial_product": entry(0.3), "clock_pj_per_ff_cycle": entry(0.01),
         "clock_pj_per_block_cycle": entry(1.0)}
COEFFICIENTS = {"families": {"ice40": {"coefficients": TABLE}},
                "targets": {"ice40-up5k": {"static_rails": {"vcc": {"voltage_v": 1.0, "current_ma": entry(0.6)},
                                                            "vccaux": {"voltage_v": 2.0, "current_ma": entry(0.2)}},
                                           "clock_pj_per_cycle": entry(2.0)}},
                "asic_floor": {"mult_8bit_pj": entry(0.2), "add_32bit_pj": entry(0.1),
                               "sram_8kb_read_64bit_pj": entry(10.0), "source": "test"}}

# one dense layer on one PE: weights in SPRAM (14 bits: one 16-bit word), its event queue, column table and output
# queue in flip-flops or LUTs, accumulators (20 bits: two 16-bit ports) and row constants (40 bits) in block RAM
LAYER = {"name": "fc", "op": "dense", "shape": [64, 32], "weight_bits": 8, "input_bits": 8, "act_bits": 8,
         "acc_bits": 20, "lanes": 1, "groups": 1,
         "estimate": {"dsp": 3}, "memories": [
             {"name": "fc.queue0.storage", "depth": 3, "width": 13, "placement": "logic"},
             {"name": "fc.pe0.weights", "depth": 100, "width": 14, "placement": "huge"},
             {"name": "fc.pe0.columns", "depth": 32, "width": 12, "placement": "logic"},
             {"name": "fc.pe0.logic.acc0", "depth": 64, "width": 20, "placement": "block"},
             {"name": "fc.pe0.logic.acc1", "depth": 64, "width": 20, "placement": "block"},
             {"name": "fc.g0_rows", "depth": 64, "width": 40, "placement": "block"},
             {"name": "fc.g0_fifo.storage", "depth": 15, "width": 15, "placement": "logic"}]}
SIM = {"images": 2, "cycles_per_image": 1000, "first_image_latency_cycles": 3000, "events": {"fc": {
    "stream_in": 40, "event_reads": 40, "weight_reads": 220, "macs": 200, "acc_updates": 220, "drain_reads": 128,
    "requantized": 128, "table_reads": 0, "stream_out": 128}}}
RESOURCES = {"ff": 500, "dsp": 3, "bram": 4, "spram": 1}


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setattr(energy, "coefficients", lambda: COEFFICIENTS)


PER_IMAGE = {  # pJ, per image (half of the two images' counts), typical coefficients
    "MACs": 100 * 2.56 * 8 * 9 / 256,                             # 8 x 9 bits of a 16 x 16 DSP
    # the entry, the operands twice (the PE's and the DSP's registers), the row at five stages, the two
    # addresses, the value at two stages, the product twice, the sum written and kept a cycle more
    "register activity": 110 * ((8 + 6) + 2 * (8 + 9) + 5 * 6 + 2 * 6 + 2 * 9 + 2 * 20 + 2 * 20) * 0.5 * 0.1,
    "weight reads": 110 * 7.0,                                    # one SPRAM word
    "event queues": 20 * (13 + 13 + 12) * 0.1,                   # queue write and read, column look-up
    "accumulators": 110 * (2 * 5.0 + 2 * 6.0 + 20 * 0.1) + 64 * (2 * 5.0 + 2 * 6.0),  # update; drain and clear
    "requantizer": 64 * (3 * 5.0 + 2.56 * 2),                     # row constants; 20-bit sum in two 15-bit slices
    "streams": 20 * 8 * 0.1 + 64 * 2 * 15 * 0.1,                  # in: a register; out: through the output queue
}
CLOCK_PJ_PER_CYCLE = 2.0 + 500 * 0.01 + 8 * 1.0  # the network, 500 flip-flops, 3 DSPs + 4 BRAMs + 1 SPRAM
STATIC_W = (1.0 * 0.6 + 2.0 * 0.2) * 1e-3  # core and auxiliary rails


def test_fpga_energy_by_hand(table):
    report = energy.fpga_energy({"layers": [LAYER]}, SIM, RESOURCES, target("ice40-up5k"))
    seconds = 1000 / 24e6
    expected = {**PER_IMAGE, "clock tree": 1000 * CLOCK_PJ_PER_CYCLE}
    for part, picojoules in expected.items():
        assert report["breakdown_j"][part] == pytest.approx(picojoules * 1e-12), part
    assert report["breakdown_j"]["static"] == pytest.approx(STATIC_W * seconds)
    total = sum(expected.values()) * 1e-12 + STATIC_W * seconds
    assert report["j_per_image"] == pytest.approx(total)
    assert report["average_power_w"] == pytest.approx(total / seconds)
    assert report["images_per_second"] == pytest.approx(24_000)
    assert report["images_per_joule"] == pytest.approx(1 / total)
    assert report["by_layer_dynamic_j"] == {"fc": pytest.approx(sum(PER_IMAGE.values()) * 1e-12)}
    assert report["coefficients"]["static_w"]["value"] == pytest.approx(STATIC_W)


def test_a_placed_design_that_misses_its_clock_is_priced_at_its_fmax(table):
    """Static power is paid per second: at a met 12 MHz instead of 24 an image takes twice as long."""
    up5k = target("ice40-up5k")
    assert clocked(up5k, {"fmax_mhz": 30.0}) == up5k and clocked(up5k, RESOURCES) == up5k
    slow = clocked(up5k, {**RESOURCES, "fmax_mhz": 12.0})
    report = energy.fpga_energy({"layers": [LAYER]}, SIM, RESOURCES, slow)
    assert report["clock_mhz"] == 12.0 and report["images_per_second"] == pytest.approx(12_000)
    assert report["breakdown_j"]["static"] == pytest.approx(STATIC_W * 1000 / 12e6)


def test_the_range_takes_every_coefficient_to_its_low_and_its_high_end_together(table):
    """With every coefficient halved at the low end and doubled at the high end (the toggle rate, which
    multiplies another coefficient, held), every part of the energy halves and doubles."""
    report = energy.fpga_energy({"layers": [LAYER]}, SIM, RESOURCES, target("ice40-up5k"))
    spread = report["j_per_image_range"]
    assert spread == {"low": pytest.approx(report["j_per_image"] / 2), "typical": report["j_per_image"],
                      "high": pytest.approx(report["j_per_image"] * 2)}
    for end, factor in (("low", 0.5), ("high", 2.0)):
        assert report["breakdown_j_range"][end] == {part: pytest.approx(joules * factor)
                                                    for part, joules in report["breakdown_j"].items()}
        assert sum(report["breakdown_j_range"][end].values()) == pytest.approx(spread[end])
    assert report["average_power_w_range"]["high"] == pytest.approx(spread["high"] * 24_000)
    assert isinstance(report["j_per_image"], float)  # the contract's number stays a number: the typical one


def test_one_image_alone_pays_static_and_clock_over_its_latency(table):
    report = energy.fpga_energy({"layers": [LAYER]}, SIM, RESOURCES, target("ice40-up5k"))
    alone = report["one_image"]
    assert alone == energy.one_image_energy({"layers": [LAYER]}, SIM, RESOURCES, target("ice40-up5k"))
    assert alone["cycles"] == 3000 and alone["seconds"] == pytest.approx(3000 / 24e6)
    assert alone["breakdown_j"]["clock tree"] == pytest.approx(3000 * CLOCK_PJ_PER_CYCLE * 1e-12)
    assert alone["breakdown_j"]["static"] == pytest.approx(STATIC_W * 3000 / 24e6)
    for part, picojoules in PER_IMAGE.items():  # the image's own events cost what they cost streaming
        assert alone["breakdown_j"][part] == pytest.approx(picojoules * 1e-12)
    assert alone["j_per_image"] == pytest.approx(sum(alone["breakdown_j"].values()))
    assert alone["j_per_image"] > report["j_per_image"]
    assert alone["j_per_image_range"]["high"] == pytest.approx(2 * alone["j_per_image"])
    without = {key: value for key, value in SIM.items() if key != "first_image_latency_cycles"}
    assert energy.fpga_energy({"layers": [LAYER]}, without, RESOURCES, target("ice40-up5k"))["one_image"] is None


def test_the_same_design_costs_more_on_a_bigger_part(generator_path):
    """Folded for the 12F, the smallest, the bundled model fits every ECP5 part; on each, the same activity
    costs the part's own static power and clock network. Folded for the 85F, it fits only that."""
    compiled = undense.compile(generator_path, target_name="ecp5-12k")
    cycles = compiled.report["predicted_cycles_per_image"]
    codes = golden.quantize_input(compiled.graph, np.random.default_rng(0).normal(size=(4, 16)))
    sim = {"images": 4, "cycles_per_image": cycles, "first_image_latency_cycles": 5 * cycles,
           "events": activity.predicted_events(compiled.graph, codes)}
    parts = energy.across_parts(compiled.report, sim, compiled.report["estimate"])
    assert [part["target"] for part in parts] == ["ecp5-12k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
    assert all(part["fits"] for part in parts)
    assert [part["compiled_for"] for part in parts] == [True, False, False, False]
    assert parts[0]["j_per_image"] == energy.fpga_energy(compiled.report, sim, compiled.report["estimate"],
                                                         target("ecp5-12k"))["j_per_image"]
    largest = undense.compile(generator_path, target_name="ecp5-85k")
    alone = energy.across_parts(largest.report, sim, largest.report["estimate"])
    assert [part["fits"] for part in alone] == [False, False, False, True] and "dsp" in alone[0]["short"]
    assert alone[0]["j_per_image"] is None
    fitting = parts
    assert [part["j_per_image"] for part in fitting] == sorted(part["j_per_image"] for part in fitting)
    for part in fitting:
        spread = part["j_per_image_range"]
        assert spread["low"] < spread["typical"] == part["j_per_image"] < spread["high"]
        assert part["one_image_j"] > part["j_per_image"]
        assert part["one_image_j_range"]["high"] >= part["j_per_image_range"]["high"]
    with pytest.raises(ValueError, match="cannot be priced on ice40"):
        energy.across_parts(compiled.report, sim, compiled.report["estimate"], "ice40")


def test_asic_floor_by_hand(table):
    floor = energy.asic_floor({"layers": [LAYER]}, SIM)  # 8-bit weights times 8-bit inputs, 20-bit sums
    assert floor["breakdown_j"]["MACs"] == pytest.approx(100 * (0.2 + 0.1 * 20 / 32) * 1e-12)
    assert floor["breakdown_j"]["weight reads"] == pytest.approx(110 * 10.0 * 14 / 64 * 1e-12)
    # an update reads and writes the 20-bit accumulator; so does a drain (the read, the clear)
    assert floor["breakdown_j"]["accumulators"] == pytest.approx((110 + 64) * 2 * 20 / 64 * 10.0 * 1e-12)


def walk(node, path=""):
    """Every numeric coefficient of the data file, as (path, the entry holding it)."""
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for key, child in node.items():
            if not key.startswith("_"):
                yield from walk(child, f"{path}.{key}")


def test_every_coefficient_has_a_range_with_its_reason_and_a_source():
    entries = list(walk(energy.coefficients()))
    assert len(entries) >= 40
    for path, node in entries:
        ends = [node[end] for end in energy.ENDS]
        assert all(isinstance(x, int | float) for x in ends) and 0 <= ends[0] <= ends[1] <= ends[2], path
        assert len(node.get("source", "")) > 20, f"{path} has no source"
        assert len(node.get("range", "")) > 10, f"{path} does not say where its ends come from"
    for family in energy.coefficients()["families"].values():
        assert set(TABLE) == set(family["coefficients"])
        assert family["core_voltage_v"] > 0


def test_every_target_has_its_static_rails_and_its_clock_network():
    data = energy.coefficients()["targets"]
    assert set(data) == set(targets())
    for name, part in data.items():
        rails = part["static_rails"]
        assert {"vcc"} <= set(rails) and all(rail["voltage_v"] > 0 for rail in rails.values()), name
        if target(name).family == "ecp5":
            assert "vccaux" in rails and rails["vccaux"]["voltage_v"] == 2.5, f"{name}: VCCAUX not counted"
        assert part["clock_pj_per_cycle"]["value"] > 0
    # the rails add up: core and VCCAUX at their voltages
    assert energy.static_w("ecp5-85k") == pytest.approx(1.1 * 0.212 + 2.5 * 0.026)
    assert energy.static_w("ecp5-25k") == pytest.approx(1.1 * 0.077 + 2.5 * 0.016)
    assert energy.static_w("ecp5-25k") < energy.static_w("ecp5-85k") / 2
    assert data["ice40-up5k"]["static_rails"]["vcc"]["current_ma"]["value"] == 0.075  # ICCSTDBY, typical
    static = [energy.static_w(part.name, "high") for part in by_size("ecp5")]
    assert static == sorted(static)  # a smaller part never costs more static power


# The model against the public iCE40 UltraPlus measurements (tinyvision-ai-inc/ice40_power), designs described as
# the resources and the activity of the rows measured: an idle design, counters, an 8 x 8 multiply each cycle.
MEASURED = energy.coefficients()["ice40_power_measurements"]
ICE40 = energy.coefficients()["families"]["ice40"]["coefficients"]


def measured_w(row: str) -> float:
    figures = MEASURED["rows"][row]
    return (figures["core_ua"] + figures.get("pll_ua", 0)) * 1e-6 * MEASURED["core_voltage_v"]


def predicted_w(row: str, end: str = "value", coefficients: dict = ICE40) -> float:
    """The model's power for a design like the row's, with every coefficient at `end` of its range: static
    power, then each cycle the clock (its network, the cells' flip-flops, the DSP), the counters' toggling
    (a binary counter flips two bits a cycle on average) and the multiply, in the DSP or in logic."""
    figures = MEASURED["rows"][row]
    table = energy.at_end(coefficients, end)
    per_cycle = 0.0
    if figures["clock_mhz"]:
        per_cycle = energy.clock_pj_per_cycle("ice40-up5k", {"ff": figures["logic_cells"],
                                                             "dsp": figures.get("dsp", 0)}, table, end)
    per_cycle += 2 * figures.get("counters", 0) * energy.value(table["logic_pj_per_bit"])
    if "multiply_bits" in figures:
        a, b = figures["multiply_bits"]
        per_cycle += (energy.multiply_pj(a, b, "ice40", table) if figures["dsp"] else
                      energy.logic_multiply_pj(a, b, table))
    return energy.static_w("ice40-up5k", end) + per_cycle * 1e-12 * figures["clock_mhz"] * 1e6


def agrees(measured: float, low: float, typical: float, high: float, tolerance: float = 0.10) -> bool:
    """The measurement inside the model's range, and the typical figure within `tolerance` of it."""
    return low <= measured <= high and abs(typical - measured) <= tolerance * measured


def test_an_idle_ice40_draws_what_the_static_range_says():
    ends = [predicted_w("blank", end) for end in energy.ENDS]
    assert ends[0] <= measured_w("blank") <= ends[2]


@pytest.mark.parametrize("row", ["counter_x1", "counter_x2", "counter_x4", "counter_x8"])
def test_ice40_counters_at_12_mhz_draw_what_the_model_predicts(row):
    """Static power, the clock network and a flip-flop per cell: 32 to 228 cells toggling at 12 MHz."""
    assert agrees(measured_w(row), *(predicted_w(row, end) for end in energy.ENDS))


@pytest.mark.parametrize("row", ["hfosc_math_dsp", "hfosc_math_logic"])
def test_an_ice40_multiplying_8_by_8_each_cycle_draws_what_the_model_predicts(row):
    """What the multiply adds to the same counter on the same oscillator, in the DSP and in logic."""
    ends = [predicted_w(row, end) - predicted_w("hfosc_counter", end) for end in energy.ENDS]
    assert agrees(measured_w(row) - measured_w("hfosc_counter"), *ends)


def test_the_calibration_rejects_the_coefficients_it_replaced():
    """Before the measurements: a flip-flop clocked for one bit of soft logic (0.0778 pJ), no clock network
    of its own, and the DSP derived from Horowitz's multiply (9.956 pJ for 16 x 16)."""
    old = {**ICE40, "clock_pj_per_ff_cycle": {"low": 0.0778, "value": 0.0778, "high": 0.0778},
           "dsp_multiply_pj": {"low": 9.956, "value": 9.956, "high": 9.956}}
    data = energy.coefficients()
    network = data["targets"]["ice40-up5k"]["clock_pj_per_cycle"]
    stale = {**data, "targets": {"ice40-up5k": {**data["targets"]["ice40-up5k"],
                                                "clock_pj_per_cycle": {**network, "low": 0, "value": 0, "high": 0}}}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(energy, "coefficients", lambda: stale)
        counter = [predicted_w("counter_x8", end, old) for end in energy.ENDS]
        dsp = [predicted_w("hfosc_math_dsp", end, old) - predicted_w("hfosc_counter", end, old)
               for end in energy.ENDS]
    assert not agrees(measured_w("counter_x8"), *counter)
    assert not agrees(measured_w("hfosc_math_dsp") - measured_w("hfosc_counter"), *dsp)


def test_power_command_writes_the_report_the_plot_and_the_sentence(tmp_path, generator_path):
    build = tmp_path / "digits"
    undense.compile(generator_path, build, images_per_second=20_000)  # one PE a layer: a small design
    missing = subprocess.run([sys.executable, "-m", "undense", "power", str(build)], capture_output=True, text=True)
    assert missing.returncode == 2 and "undense sim" in missing.stderr and "Traceback" not in missing.stderr
    subprocess.run([sys.executable, "-m", "undense", "sim", str(build), "-n", "16"], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "undense", "power", str(build), "--gpu", "L4"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((build / "power.json").read_text())
    assert {"fpga_j_per_image", "gpu", "ratio_batch1", "ratio_best"} <= report.keys()
    assert {"j_per_image_batch1", "j_per_image_best", "best_batch", "source"} <= report["gpu"].keys()
    assert report["gpu"]["source"] == "model" and report["gpu"]["gpu"] == "L4"
    fpga = report["fpga"]
    assert fpga["j_per_image"] == pytest.approx(sum(fpga["breakdown_j"].values()))
    # the GPU at its best batch against the FPGA streaming; at batch 1 against one image alone on the FPGA
    assert report["ratio_best"] == pytest.approx(report["gpu"]["j_per_image_best"] / fpga["j_per_image"])
    assert report["fpga_one_image_j"] == fpga["one_image"]["j_per_image"] > fpga["j_per_image"]
    assert report["ratio_batch1"] == pytest.approx(report["gpu"]["j_per_image_batch1"] / report["fpga_one_image_j"])
    for name in ("fpga_j_per_image", "fpga_one_image_j"):
        spread = report[f"{name}_range"]
        assert spread["low"] < spread["typical"] == report[name] < spread["high"]
    for name in ("ratio_best", "ratio_batch1"):  # from the GPU's low over the FPGA's high to the other ends
        spread = report[f"{name}_range"]
        assert spread["low"] < spread["typical"] < spread["high"] and spread["typical"] == pytest.approx(report[name])
    gpu_best = report["gpu"]["j_per_image_best_range"]
    assert spread["low"] == pytest.approx(report["gpu"]["j_per_image_batch1_range"]["low"]
                                          / report["fpga_one_image_j_range"]["high"])
    assert gpu_best["low"] <= gpu_best["typical"] <= gpu_best["high"]
    assert [part["device"] for part in report["parts"] if part["compiled_for"]] == ["LFE5U-85F"]
    assert 0 < report["floor"]["j_per_image"] < fpga["j_per_image"]
    assert report["sentence"] in done.stdout
    assert ") per image on LFE5U-85F at 100 MHz vs" in report["sentence"]
    assert f"at batch {report['gpu']['best_batch']:,}: GPU/FPGA" in report["sentence"]
    assert "one image alone" in report["sentence"] and "at batch 1:" in report["sentence"]
    assert (build / "power.png").stat().st_size > 10_000
