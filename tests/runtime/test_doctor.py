import subprocess
import sys

from click.testing import CliRunner

from undense.runtime import cli, doctor


def test_doctor_passes_in_the_venv():
    done = subprocess.run([sys.executable, "-m", "undense", "doctor"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for tool in ("amaranth", "cocotb", "onnxruntime", "verilator", "yosys", "nextpnr-ecp5",
                 "nextpnr-ice40", "g++", "perl"):
        assert any(line.split()[:2] == ["ok", tool] for line in done.stdout.splitlines()), tool
    assert "MISSING" not in done.stdout


def test_a_missing_tool_is_named_with_its_fix(monkeypatch):
    missing = doctor._system_tool("no-such-compiler", "no-such-package")
    monkeypatch.setattr(doctor, "TOOLS", [("no-such-compiler", missing, False)])
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 1
    assert "MISSING no-such-compiler" in " ".join(result.output.split())
    assert "fix: apt-get install no-such-package" in result.output


def test_a_too_old_package_is_reported(monkeypatch):
    monkeypatch.setattr(doctor.metadata, "requires", lambda _: ["numpy>=999"])
    (check,) = doctor.python_packages()
    assert not check.ok and "needs >=999" in check.problem
