"""`undense generate` and `undense report`: the grid on the RTL, and the page in a real headless browser."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from headless_page import opened
from PIL import Image

import undense
from undense.runtime.report import render


def undense_command(*args):
    done = subprocess.run([sys.executable, "-m", "undense", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def build(tmp_path_factory, generator_path):
    """The bundled model, one PE a layer, through every stage but synthesis."""
    directory = tmp_path_factory.mktemp("report") / "digits"
    undense.compile(generator_path, directory, images_per_second=20_000)
    undense_command("sim", directory, "-n", "16")
    out = undense_command("generate", directory, "-n", "32", "--backend", "rtl", "--seed", "3")
    assert "32 images (rtl)" in out and "quality score" in out
    undense_command("power", directory)
    return directory


def test_generate_records_the_grid_and_its_score(build):
    generated = json.loads((build / "generate.json").read_text())
    assert generated["backend"] == "rtl" and generated["images"] == 32 and generated["seed"] == 3
    assert 1 <= generated["quality_score"] <= 10
    assert Image.open(generated["grid"]).size[0] > 64


def test_report_opens_offline_with_no_console_errors_and_shows_the_images(build, tmp_path):
    out = undense_command("report", build)
    sentence = json.loads((build / "power.json").read_text())["sentence"]
    assert out.strip().splitlines()[-1] == sentence  # the line to quote comes last
    page_path = build / "report.html"
    html = page_path.read_text()
    assert "<script" not in html
    with opened(page_path) as visit:
        widths = visit.image_widths()
        visit.page.locator("img.grid").screenshot(path=tmp_path / "grid.png")
        visit.page.screenshot(path=tmp_path / "page.png", full_page=True)
    assert visit.errors == []
    assert visit.offline  # nothing fetched: it opens offline
    assert len(widths) == 2 and all(width > 0 for width in widths)  # the grid and the energy plot decoded
    shot = np.asarray(Image.open(tmp_path / "grid.png").convert("L"))
    assert (shot < 64).mean() > 0.05 and (shot > 192).mean() > 0.3  # dark digits drawn on white


def test_a_stage_not_run_says_how_to_run_it(tmp_path, generator_path):
    compiled = undense.compile(generator_path, tmp_path / "digits", images_per_second=20_000)
    html = render(compiled)
    for stage in ("generate --backend rtl", "sim", "synth", "power"):
        assert f"<code>undense {stage} " in html


def test_the_page_names_the_model_the_activations_and_writes_ratios_without_exponents(build):
    html = render(undense.load(build))
    assert "<title>undense: generator.onnx on " in html
    assert "dense + relu" in html and "dense + sigmoid" in html
    text = re.sub(r'src="data:[^"]*"', "", html)  # an embedded PNG's base64 may hold "e+0" by chance
    assert "e+0" not in text and "e-0" not in text


def test_energy_computed_from_reports_that_changed_since_is_marked_stale(build, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(build, copy)
    assert "stale" not in render(undense.load(copy))
    sim = copy / "sim.json"
    sim.write_text(sim.read_text() + "\n")  # a later simulation wrote it again
    html = render(undense.load(copy))
    assert html.count("stale: sim.json changed since") == 1
    assert f"Stale: sim.json changed since. <code>undense power {copy}</code>" in html
    (copy / "synth.json").write_text(json.dumps({"target": "elsewhere"}))
    assert "synth.json was written after it" in render(undense.load(copy))


def test_a_simulation_short_of_a_steady_state_says_so(build, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(build, copy)
    sim = json.loads((copy / "sim.json").read_text())
    sim.update(images=1, steady_state=False, images_needed_for_steady_state=13)  # as `undense sim -n 1` writes it
    (copy / "sim.json").write_text(json.dumps(sim))
    html = render(undense.load(copy))
    assert "over 1 image, not a steady state, which needs 13" in html
    assert "1 image, short of the 13 a steady state needs" in html and f"undense sim -n 13 {copy}" in html


def test_a_power_json_from_an_older_undense_asks_to_run_power_again(build, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(build, copy)
    power = json.loads((copy / "power.json").read_text())
    for key in ("fpga_j_per_image_range", "fpga_one_image_j", "fpga_one_image_j_range", "read", "parts"):
        power.pop(key)
    (copy / "power.json").write_text(json.dumps(power))
    html = render(undense.load(copy))
    assert f"power.json was written by an older undense, without ranges or one image alone: <code>undense power " \
           f"{copy}</code>" in html
