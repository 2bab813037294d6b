import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import undense
from undense.compiler import builddir
from undense.errors import UndenseError
from undense.runtime.synthetic import mlp


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, generator_path):
    return undense.compile(generator_path, tmp_path_factory.mktemp("build") / "digits")


def test_build_dir_round_trips_bit_for_bit(compiled):
    latents = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    loaded = undense.load(compiled.directory)
    np.testing.assert_array_equal(loaded.run(latents), compiled.run(latents))
    assert loaded.report == compiled.report


def test_report_has_the_contract_keys(compiled):
    report = json.loads((compiled.directory / "compile.json").read_text())
    for layer in report["layers"]:
        assert {"name", "op", "shape", "nnz", "density", "weight_bits", "act_bits", "pe", "cycles"} <= set(layer)
    assert [layer["name"] for layer in report["layers"]] == ["fc1", "fc2", "fc3"]
    manifest = json.loads((compiled.directory / "manifest.json").read_text())
    assert manifest["format_version"] == builddir.FORMAT_VERSION
    assert len(manifest["source"]["sha256"]) == 64


def test_another_format_version_is_refused(compiled, tmp_path):
    manifest = json.loads((compiled.directory / "manifest.json").read_text())
    manifest["format_version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UndenseError, match="format version 999.*compile the model again"):
        undense.load(tmp_path)


def test_a_build_dir_without_its_weights_or_with_them_damaged(compiled, tmp_path):
    shutil.copy(compiled.directory / "manifest.json", tmp_path)
    with pytest.raises(UndenseError, match="lacks weights.npz, which `undense compile` writes.*model again"):
        undense.load(tmp_path)
    (tmp_path / "weights.npz").write_bytes((compiled.directory / "weights.npz").read_bytes()[:100])
    with pytest.raises(UndenseError, match="weights.npz cannot be read .*compile the model again"):
        undense.load(tmp_path)


def test_a_folder_that_is_not_a_build_dir(tmp_path):
    with pytest.raises(UndenseError, match="not an undense build dir"):
        undense.load(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UndenseError, match="not an undense build dir; choose another -o"):
        undense.compile(mlp([4, 4], [None]), tmp_path, calibration=np.zeros((4, 4)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_compile_writes_nothing(tmp_path):
    with pytest.raises(UndenseError):
        undense.compile(mlp([4, 4], [None]), tmp_path / "out", calibration=np.zeros((4, 4)), bits=12)
    assert list(tmp_path.iterdir()) == []


def test_recompiling_replaces_the_build_dir(compiled, generator_path):
    again = undense.compile(generator_path, compiled.directory, bits=6)
    assert undense.load(again.directory).report["options"]["bits"] == 6
    assert sorted(p.name for p in compiled.directory.parent.iterdir()) == ["digits"]


def test_a_bug_while_writing_leaves_no_half_written_build_dir(tmp_path, monkeypatch):
    """The build dir is written beside itself and moved into place: an exception half way leaves nothing."""
    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(builddir.np, "savez_compressed", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        undense.compile(mlp([4, 4], [None]), tmp_path / "out", calibration=np.zeros((4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_a_killed_compiles_staging_folder_goes_with_the_next_compile(tmp_path):
    """A write killed half way leaves its hidden staging folder beside DIR; the next write into DIR removes it,
    and keeps one whose process still runs (a compile into DIR going on at the same time)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, live = tmp_path / f".out.{gone.pid}-abc123", tmp_path / f".out.{os.getpid()}-def456"
    for folder in (stale, live):
        folder.mkdir()
        (folder / builddir.MANIFEST).write_text("{}")
    undense.compile(mlp([4, 4], [None]), tmp_path / "out", calibration=np.zeros((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]


def test_later_results_name_what_a_compile_replaces(tmp_path):
    assert builddir.later_results(tmp_path / "none") == []
    undense.compile(mlp([4, 4], [None]), tmp_path / "out", calibration=np.zeros((4, 4)))
    assert builddir.later_results(tmp_path / "out") == []
    (tmp_path / "out" / "sim.json").write_text("{}")
    (tmp_path / "out" / "rtl").mkdir()
    assert builddir.later_results(tmp_path / "out") == ["rtl/", "sim.json"]
