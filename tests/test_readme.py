"""The README's commands and Python example, run as written: from a folder that has the repository's .venv and
models/ beside it, as a fresh clone has, with the user's own model and latents where the README names them."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from undense.runtime.synthetic import mlp

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def code_blocks(language: str, after: str) -> list[str]:
    """The code blocks of `language` in the README section whose heading or paragraph starts with `after`."""
    section = README[README.index(after):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def commands(language: str, after: str) -> list[str]:
    lines = "".join(code_blocks(language, after)).splitlines()
    return [line for line in lines if line.strip()]


@pytest.fixture
def clone(tmp_path) -> Path:
    """A working folder laid out like the repository's root: the venv and the bundled models beside it."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "models").symlink_to(REPO / "models")
    return tmp_path


def run(line: str, folder: Path) -> None:
    done = subprocess.run(["bash", "-c", line], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def test_the_bundled_model_example_runs_as_written(clone):
    lines = commands("sh", "For example, on the bundled model")
    assert len(lines) == 2
    for line in lines:
        run(line, clone)
    assert np.load(clone / "pixels.npy").shape == (512, 64)  # the 512 calibration latents, 8x8 pixels each


def test_the_python_example_runs_as_written(clone):
    (example,) = code_blocks("python", "The same from Python")
    done = subprocess.run([sys.executable, "-c", example + "print(pixels.shape)"], cwd=clone, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(16, 64)"


@pytest.mark.first
def test_your_own_model_runs_as_written(clone):
    """A model that is not the bundled one: 16 latents, Tanh then Sigmoid, 8x8 out."""
    onnx.save(mlp([16, 48, 64], ["Tanh", "Sigmoid"], density=0.3, seed=21), clone / "my_model.onnx")
    np.save(clone / "latents.npy", np.random.default_rng(5).standard_normal((256, 16)).astype(np.float32))
    lines = commands("sh", "## Your own model")
    assert [line.split()[1] for line in lines] == ["compile", "sim", "generate", "synth", "power", "report"]
    for line in lines:
        run(line, clone)
    assert (clone / "build" / "mine" / "report.html").is_file()
    # make test's one ECP5 synthesis: a model the estimate was not calibrated on, against the estimate
    synthesis = json.loads((clone / "build" / "mine" / "synth.json").read_text())
    assert synthesis["timing_met"] and synthesis["placer"] == "heap"
    for resource in ("dsp", "bram"):
        assert synthesis[resource] == synthesis["estimate"][resource] >= 1
    assert abs(synthesis["estimate"]["lut"] - synthesis["lut"]) <= 0.25 * synthesis["lut"]
    assert any(kind.startswith("bram") and any(o.endswith("requantizer.table") for o in owners)
               for kind, owners in synthesis["placement"].items())  # its Tanh and Sigmoid tables
