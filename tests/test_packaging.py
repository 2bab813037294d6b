"""The distribution installs one top-level package, `undense`, with the four stage folders inside it."""
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_undense_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("undense-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"undense"}
    for package in ("compiler", "hw", "sim", "runtime"):
        assert f"undense/{package}/__init__.py" in names
    assert "undense/runtime/data/digits_classifier.onnx" in names
    for data in ("sim/data/energy.json", "sim/data/gpus.json", "sim/harness/stream_harness.cpp", "sim/top_bench.py"):
        assert f"undense/{data}" in names
