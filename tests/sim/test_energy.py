"""The FPGA energy model on a hand-worked case, the ASIC floor, the sources of every coefficient, and the
`undense power` command."""
import json
import subprocess
import sys

import pytest

import undense
from undense.compiler.targets import target
from undense.sim import energy


def entry(value):
    return {"value": value, "source": "test"}


TABLE = {"dsp_multiply_pj": entry(2.56), "toggle_rate": entry(0.5), "bram_read_pj": entry(5.0),
         "bram_write_pj": entry(6.0), "spram_read_pj": entry(7.0), "spram_write_pj": entry(8.0),
         "lutram_read_pj_per_bit": entry(0.5), "lutram_write_pj_per_bit": entry(0.25), "logic_pj_per_bit": entry(0.1),
         "clock_pj_per_ff_cycle": entry(0.01),
         "clock_pj_per_block_cycle": entry(1.0)}
COEFFICIENTS = {"families": {"ice40": {"coefficients": TABLE}}, "static_w": {"ice40-up5k": entry(0.001)},
                "asic_floor": {"mult_8bit_pj": entry(0.2), "add_32bit_pj": entry(0.1),
                               "sram_8kb_read_64bit_pj": entry(10.0), "source": "test"}}

# one dense layer, one PE: weights in SPRAM (16 bits), inputs in flip-flops (8 bits), outputs in block RAM
# (20 bits: two 16-bit ports), output codes of 8 bits
LAYER = {"name": "fc", "op": "dense", "shape": [64, 32], "weight_bits": 8, "input_bits": 8, "act_bits": 8,
         "acc_bits": 20,
         "estimate": {"dsp": 3}, "memories": [
             {"name": "fc.pe0.weights", "depth": 100, "width": 16, "placement": "huge"},
             {"name": "fc.pe0.inputs", "depth": 32, "width": 8, "placement": "logic"},
             {"name": "fc.pe0.outputs", "depth": 64, "width": 20, "placement": "block"},
             {"name": "fc.rows", "depth": 32, "width": 40, "placement": "block"}]}
SIM = {"images": 2, "cycles_per_image": 1000, "events": {"fc": {
    "macs": 200, "weight_reads": 220, "input_buffer_writes": 32, "input_buffer_reads": 220,
    "output_buffer_writes": 64, "output_buffer_reads": 64, "stream_in": 32, "stream_out": 64}}}


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setattr(energy, "coefficients", lambda: COEFFICIENTS)


def test_fpga_energy_by_hand(table):
    report = energy.fpga_energy({"layers": [LAYER]}, SIM, {"ff": 500, "dsp": 3, "bram": 4, "spram": 1},
                                target("ice40-up5k"))
    per_image = {  # pJ, per image (half of the two images' counts)
        "MACs": 100 * (2.56 * 8 * 9 / 256 + 20 * 0.1),               # 8 x 9 bits of a 16 x 16 DSP; the add
        "register activity": 110 * (8 + 5 + 1 + 8 + 1 + 8 + 8 + 8 + 1) * 0.5 * 0.1,  # entry, value, input, product
        "weight reads": 110 * 7.0,                                  # one SPRAM word
        "buffer writes": 16 * 8 * 0.1 + 32 * 2 * 6.0,               # flip-flops; two BRAM ports for 20 bits
        "buffer reads": 110 * 8 * 0.1 + 32 * 2 * 5.0,
        "requantizer": 32 * 2.56 * 2,                               # 20-bit sum: two 15-bit DSP slices
        "streams": (16 + 32) * 8 * 0.1,
        "clock tree": 1000 * (500 * 0.01 + 8 * 1.0),
    }
    seconds = 1000 / 24e6
    for part, picojoules in per_image.items():
        assert report["breakdown_j"][part] == pytest.approx(picojoules * 1e-12), part
    assert report["breakdown_j"]["static"] == pytest.approx(0.001 * seconds)
    total = sum(per_image.values()) * 1e-12 + 0.001 * seconds
    assert report["j_per_image"] == pytest.approx(total)
    assert report["average_power_w"] == pytest.approx(total / seconds)
    assert report["images_per_second"] == pytest.approx(24_000)
    assert report["images_per_joule"] == pytest.approx(1 / total)
    dynamic = sum(v for k, v in per_image.items() if k != "clock tree") * 1e-12
    assert report["by_layer_dynamic_j"] == {"fc": pytest.approx(dynamic)}


def test_asic_floor_by_hand(table):
    floor = energy.asic_floor({"layers": [LAYER]}, SIM)  # 8-bit weights times 8-bit inputs, 20-bit sums
    assert floor["breakdown_j"]["MACs"] == pytest.approx(100 * (0.2 + 0.1 * 20 / 32) * 1e-12)
    assert floor["breakdown_j"]["weight reads"] == pytest.approx(110 * 10.0 * 16 / 64 * 1e-12)
    assert floor["breakdown_j"]["buffer reads"] == pytest.approx((110 * 8 + 32 * 20) / 64 * 10.0 * 1e-12)


def walk(node, path=""):
    """Every numeric coefficient of the data file, as (path, the entry holding it)."""
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for key, child in node.items():
            if not key.startswith("_"):
                yield from walk(child, f"{path}.{key}")


def test_every_coefficient_names_its_source():
    entries = list(walk(energy.coefficients()))
    assert len(entries) >= 20
    for path, node in entries:
        assert isinstance(node["value"], int | float) and node["value"] >= 0, path
        assert len(node.get("source", "")) > 20, f"{path} has no source"
    for family in energy.coefficients()["families"].values():
        assert set(TABLE) <= set(family["coefficients"])
        assert family["core_voltage_v"] > 0
    for name in ("ecp5-85k", "ecp5-25k", "ice40-up5k"):
        assert name in energy.coefficients()["static_w"]


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
    assert report["ratio_batch1"] == pytest.approx(report["gpu"]["j_per_image_batch1"] / fpga["j_per_image"])
    assert 0 < report["floor"]["j_per_image"] < fpga["j_per_image"]
    assert report["sentence"] in done.stdout
    assert "uJ per image on LFE5U-85F at 100 MHz vs" in report["sentence"]
    assert (build / "power.png").stat().st_size > 10_000
