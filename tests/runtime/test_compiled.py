"""Compiled.run takes what the model can take, and refuses anything else in one UndenseError before any work."""
import numpy as np
import pytest

import undense
from undense.errors import UndenseError
from undense.runtime.compiled import load_inputs
from undense.runtime.synthetic import mlp, qlinear_matmul


@pytest.fixture(scope="module")
def compiled():
    return undense.compile(mlp([16, 8], ["Tanh"]), calibration="normal:64")


def with_value(value, index=(1, 3)):
    x = np.zeros((2, 16), np.float32)
    x[index] = value
    return x


@pytest.mark.parametrize("x,message", [
    (np.zeros((0, 16), np.float32), r"an empty batch \(input shaped \(0, 16\)\)"),
    (np.full((2, 16), "a"), r"the inputs are text \(<U1\), not numbers"),
    (np.zeros((2, 16), object), r"the inputs are Python objects \(object\)"),
    (np.zeros((2, 16), bool), "the inputs are booleans"),
    (with_value(np.nan), "1 NaN and 0 infinite values, the first at input 1, feature 3; give finite numbers"),
    (with_value(-np.inf), "0 NaN and 1 infinite values"),
    (np.zeros((2, 15), np.float32), r"input shaped \(2, 15\); the model takes \[N, 16\]"),
    (np.zeros(16, np.float32), r"input shaped \(16,\)"),
])
def test_inputs_the_model_cannot_take_are_refused(compiled, x, message):
    with pytest.raises(UndenseError, match=message):
        compiled.run(x)


def test_codes_beyond_an_integer_inputs_range_are_refused():
    compiled = undense.compile(qlinear_matmul())
    compiled.run(np.full((1, 24), 255))
    for x, message in ((np.full((1, 24), 256), "codes from 0 to 255; these inputs range from 256 to 256"),
                       (np.full((1, 24), 2.5), "with fractions")):
        with pytest.raises(UndenseError, match=message):
            compiled.run(x)


def test_inputs_come_from_npy_files_only(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 16), np.float32))
    np.testing.assert_array_equal(load_inputs(tmp_path / "x.npy"), np.ones((2, 16)))
    np.savez(tmp_path / "x.npz", x=np.ones((2, 16)))
    (tmp_path / "x.csv").write_text("1,2,3\n")
    np.save(tmp_path / "objects.npy", np.array([[1], [2]], object), allow_pickle=True)
    for name, message in (("x.npz", "is not a .npy file"), ("x.csv", "is not a .npy file"),
                          ("objects.npy", "cannot read the inputs")):
        with pytest.raises(UndenseError, match=message):
            load_inputs(tmp_path / name)
