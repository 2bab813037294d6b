"""Every kind of model the compiler accepts also runs on the RTL, bit-exact (bulk simulation on Verilator)."""
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import undense
from undense.runtime.synthetic import model

EXPORTED = Path(__file__).parents[1] / "compiler" / "exported"


def integer_weights(seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, size=(24, 10)).astype(np.int8)
    weight[rng.random(weight.shape) < 0.7] = 0
    return weight


def matmul_integer():
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    return model(nodes, {"w": integer_weights(), "x_zero": np.array(131, np.uint8)}, 24, 10,
                 input_type=TensorProto.UINT8, output_type=TensorProto.INT32)


def qlinear_matmul():
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8), "w": integer_weights(1),
             "ws": np.array(0.004, np.float32), "wz": np.array(0, np.int8), "ys": np.array(0.05, np.float32),
             "yz": np.array(120, np.uint8)}
    nodes = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    return model(nodes, inits, 24, 10, input_type=TensorProto.UINT8, output_type=TensorProto.UINT8)


CASES = {
    "residual (torch legacy export)": lambda: undense.compile(
        EXPORTED / "legacy_batchnorm.onnx", calibration=np.random.default_rng(0).normal(size=(200, 12))),
    "MatMulInteger (raw int32 accumulator out)": lambda: undense.compile(matmul_integer()),
    "QLinearMatMul (uint8 in and out)": lambda: undense.compile(qlinear_matmul()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_runs_bit_exact_on_rtl(case, tmp_path):
    compiled = CASES[case]().save(tmp_path / "build")
    x = compiled.random_inputs(25, seed=3)
    result = compiled.simulate(x)
    assert result.report["mismatches"] == 0, result.report.get("first_mismatch")
    assert result.report["event_mismatches"] == []
    np.testing.assert_array_equal(compiled.run(x, backend="rtl"), compiled.run(x, backend="golden"))
