"""`undense rtl`: Verilog that lints clean under -Wall with only the documented waivers, ONNX names kept."""
import re
import subprocess
import sys

import pytest

import undense
from undense.hw.emit import WAIVERS, emit_verilog
from undense.sim.tools import verilator_env, verilator_root


@pytest.fixture(scope="module")
def build(tmp_path_factory, generator_path):
    return undense.compile(generator_path, tmp_path_factory.mktemp("rtl") / "digits",
                           images_per_second=20_000)  # one PE a layer: a small design


def lint(verilog):
    return subprocess.run([str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
                           str(verilog.parent / "waivers.vlt"), str(verilog)],
                          capture_output=True, text=True, env=verilator_env())


def test_rtl_command_writes_verilog_that_lints_clean(build):
    done = subprocess.run([sys.executable, "-m", "undense", "rtl", str(build.directory)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    verilog = build.directory / "rtl" / "undense_top.v"
    result = lint(verilog)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr[-3000:]
    modules = re.findall(r"^module \\?(\S+)", verilog.read_text(), flags=re.MULTILINE)
    for layer in ("fc1", "fc2", "fc3"):
        assert f"undense_top.{layer}" in modules


def test_the_event_counting_variant_lints_clean_too(build, tmp_path):
    result = lint(emit_verilog(build.graph, tmp_path))
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr[-3000:]


def test_waivers_are_documented():
    lines = WAIVERS.read_text().splitlines()
    rules = [line for line in lines if line.startswith("lint_off")]
    assert rules
    for rule in rules:  # every waiver has its reason on the comment line above it
        assert lines[lines.index(rule) - 1].startswith("//")
