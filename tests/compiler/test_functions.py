"""The activation functions' float references (compiler/functions.py)."""
import numpy as np

from undense.compiler.functions import Function


def test_sigmoid_far_below_zero_is_zero_without_an_overflow_warning():
    """The test suite raises RuntimeWarnings; exp(1000) overflows, and sigmoid(-1000) is still 0."""
    values = Function("sigmoid").apply(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])
