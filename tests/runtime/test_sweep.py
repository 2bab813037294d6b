"""`undense sweep` on the bundled 8x8 model: points through the local pool (and a Ray runtime, slow), a failure kept
as data, the cache, a sweep interrupted and resumed, the Pareto fronts, and the page in a headless browser."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from headless_page import opened

from undense.runtime.sweep import Point, grid, pareto


def points_on(targets: str) -> list[str]:
    return ["--bits", "4,8", "--target", targets, "--images-per-second", "20000", "-n", "32"]


# 4 points: 20,000 images/s fits the ECP5-25F at both widths and the UP5K at 4 bits; at 8 bits the UP5K tops out
# near 15,800, a point that fails (its message kept as data)
POINTS = points_on("ecp5-25k,ice40-up5k")


def undense(*args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "undense", *map(str, args)], capture_output=True, text=True)
    assert not check or done.returncode == 0, done.stderr
    return done


def comparable(report: dict) -> dict:
    """A sweep.json without what depends on how and when it ran: timings, engine, cache hits."""
    report = json.loads(json.dumps(report))
    for key in ("engine", "workers"):
        report.pop(key)
    for key in ("wall_s", "ran", "cached"):
        report["summary"].pop(key)
    for point in report["points"]:
        for key in ("seconds", "wall_s", "cached"):
            point.pop(key)
    return report


@pytest.fixture(scope="session")  # not remade when the tests that share it run apart, between other modules'
def swept(tmp_path_factory, generator_path):
    directory = tmp_path_factory.mktemp("sweep") / "digits"
    done = undense("sweep", generator_path, *POINTS, "--no-synth", "--workers", "2", "-o", directory)
    return directory, json.loads((directory / "sweep.json").read_text()), done.stdout


@pytest.mark.first
@pytest.mark.xdist_group("swept")
def test_each_point_is_bit_exact_priced_and_scored_and_a_failure_is_data(swept):
    directory, report, stdout = swept
    assert report["summary"]["points"] == 4 and report["summary"]["ran"] == 4
    failed = [p for p in report["points"] if p["failure"]]
    assert [p["options"] for p in failed] == [{"bits": 8, "target": "ice40-up5k", "images_per_second": 20000.0,
                                               "layer_bits": {}}]
    assert failed[0]["failure"]["kind"] == "error" and failed[0]["failure"]["stage"] == "compile"
    assert "cannot reach 20000 images/s" in failed[0]["failure"]["message"]
    assert report["summary"]["failed_by_kind"] == {"error": 1}
    for point in report["points"]:
        if point["failure"]:
            continue
        figures = point["figures"]
        assert figures["mismatches"] == 0 and figures["simulated_images"] == 32
        assert figures["images_per_second"] >= 20_000 and figures["resources_from"] == "the compiler's estimate"
        assert 0 < figures["j_per_image"] < 1e-3 and figures["lut"] > 0
        assert 0.8 < figures["quality_to_float"] < 1.2
        assert (directory / point["report"]).is_file()
        build = json.loads((directory / "points" / point["key"] / "build" / "compile.json").read_text())
        assert build["options"]["bits"] == point["options"]["bits"] and build["target"] == point["options"]["target"]
    assert "4 points: 4 ran, 0 from earlier runs, 1 failed" in stdout


@pytest.mark.xdist_group("swept")
def test_the_pareto_fronts_hold_exactly_the_points_nothing_beats(swept):
    _, report, _ = swept
    points = [p for p in report["points"] if not p["failure"]]
    for front, (lower, higher) in {"energy_quality": ("j_per_image", "quality_to_float"),
                                   "speed_area": ("lut", "images_per_second")}.items():
        for point in points:
            beaten = any(o["figures"][lower] <= point["figures"][lower] and
                         o["figures"][higher] >= point["figures"][higher] and o is not point and
                         (o["figures"][lower], o["figures"][higher]) != (point["figures"][lower],
                                                                         point["figures"][higher])
                         for o in points)
            assert (front in point["pareto"]) == (not beaten)


def test_pareto_on_made_up_points():
    records = [{"key": key, "figures": {"j": j, "q": q}} for key, j, q in
               [("a", 1, 0.9), ("b", 2, 0.95), ("c", 2, 0.9), ("d", 3, 0.95), ("e", 0.5, None)]]
    assert pareto(records, "j", "q") == {"a", "b"}


def test_the_grid_is_every_combination_in_order():
    points = grid([4, 8], ["ecp5-25k", "auto"], [None, 1000.0], {"fc2": 6})
    assert len(points) == 8 and points[0] == Point(4, "ecp5-25k", None, (("fc2", 6),))
    assert points[-1].label == "8 bits, fc2=6, auto, 1,000 img/s"


@pytest.mark.xdist_group("swept")
def test_the_page_opens_offline_and_links_every_point_to_its_report(swept, tmp_path):
    directory, report, _ = swept
    page_path = directory / "sweep.html"
    assert "<script" not in page_path.read_text()
    with opened(page_path) as visit:
        widths = visit.image_widths()
        links = visit.page.eval_on_selector_all("a", "links => links.map(link => link.href)")
        marked = visit.page.locator("td b").all_inner_texts()
        with visit.page.expect_navigation():
            visit.page.locator("a").first.click()
        title = visit.page.title()
    assert visit.errors == [] and visit.offline
    assert widths and all(width > 0 for width in widths)
    ran = [p for p in report["points"] if not p["failure"]]
    assert sorted(links) == sorted((directory / p["report"]).as_uri() for p in ran)
    assert len(marked) == sum(bool(p["pareto"]) for p in report["points"])
    assert title.startswith("undense: generator.onnx on ")


@pytest.mark.xdist_group("swept")
def test_the_smallest_point_synthesizes_and_a_rerun_runs_nothing(swept, generator_path):
    directory, report, _ = swept
    undense("sweep", generator_path, "--bits", "8", "--target", "ice40-up5k", "-n", "32", "-o", directory)
    synthesized = json.loads((directory / "sweep.json").read_text())["points"]
    assert len(synthesized) == 1 and synthesized[0]["figures"]["resources_from"] == "synth.json"
    assert synthesized[0]["figures"]["fmax_mhz"] > 0 and synthesized[0]["seconds"]["synth"] > 0
    # the bundled model as `undense compile --target ice40-up5k` folds it: it fits, its weights in SPRAM
    synthesis = json.loads((directory / "points" / synthesized[0]["key"] / "build" / "synth.json").read_text())
    for resource in ("dsp", "bram", "spram"):
        assert synthesis[resource] == synthesis["estimate"][resource] <= synthesis["capacity"][resource]
    assert synthesis["spram"] >= 1
    assert all(owner.endswith(".weights") for owner in synthesis["placement"]["spram (SB_SPRAM256KA)"])
    assert abs(synthesis["estimate"]["lut"] - synthesis["lut"]) <= 0.25 * synthesis["lut"]
    assert synthesis["timing_met"] and synthesis["fmax_mhz"] >= 24
    again = undense("sweep", generator_path, *POINTS, "--no-synth", "-o", directory)
    assert "4 points: 0 ran, 4 from earlier runs, 1 failed" in again.stdout
    assert comparable(json.loads((directory / "sweep.json").read_text())) == comparable(report)


@pytest.mark.xdist_group("swept")  # after the fixture, on its worker: the same designs, simulators built once
def test_an_interrupted_or_widened_sweep_runs_only_the_points_left(tmp_path, generator_path):
    directory = tmp_path / "interrupted"

    def command(targets: str) -> list[str]:
        return [sys.executable, "-m", "undense", "sweep", str(generator_path), *points_on(targets), "--no-synth",
                "--workers", "1", "-o", str(directory)]

    # the fixture's 25F points, whose simulators are built once for both tests. Ctrl-C reaches the whole process
    # group, workers too; SIGINT as Python handles it even where this test runs in the background, whose jobs start
    # with SIGINT ignored
    sweep = subprocess.Popen(command("ecp5-25k"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not list(directory.glob("points/*/point.json")):
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.1)
    os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 1 and "run the same command again to run only the rest" in stderr
    finished = len(list(directory.glob("points/*/point.json")))
    assert finished == 1 and not (directory / "sweep.json").exists()
    resumed = subprocess.run(command("ecp5-25k"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 points: 1 ran, 1 from earlier runs, 0 failed" in resumed.stdout
    # widened by the fixture's other part: its simulator of the 4-bit point is built, the 8-bit point fails
    widened = subprocess.run(command("ecp5-25k,ice40-up5k"), capture_output=True, text=True)
    assert "4 points: 2 ran, 2 from earlier runs, 1 failed" in widened.stdout, widened.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--bits", "4,x", "--bits '4,x': give bit widths from 2 to 8, comma-separated"),
    ("--bits", "4,9", "--bits '4,9': give bit widths from 2 to 8, comma-separated"),
    ("--target", "ecp5-25k,virtex", "--target virtex: unknown; choose from "),
    ("--images-per-second", "fast", "--images-per-second 'fast': give positive rates or 'fastest', comma-separated"),
    ("--images-per-second", "-5,", "--images-per-second '-5,': give positive rates or 'fastest', comma-separated"),
])
def test_a_bad_list_is_one_error_line(tmp_path, generator_path, option, value, message):
    done = undense("sweep", generator_path, option, value, "-o", tmp_path / "s", check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"Error: {message}") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("swept")
def test_the_same_sweep_on_a_local_ray_runtime_gives_the_same_figures(swept, generator_path, tmp_path):
    ray = [os.path.join(os.path.dirname(sys.executable), "ray")]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([*ray, "start", "--head", "--num-cpus", "2", "--disable-usage-stats"], check=True,
                   capture_output=True, env=env)
    try:
        done = undense("sweep", generator_path, *POINTS, "--no-synth", "--ray", "auto", "-o", tmp_path / "ray")
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True, env=env)
    report = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert report["engine"].startswith("Ray (auto)") and "4 points: 4 ran" in done.stdout
    assert comparable(report) == comparable(swept[1])
