import json
from statistics import NormalDist

import numpy as np
import pytest
from onnx import TensorProto, helper

import undense
from undense.compiler.calibration import (
    FRESH_LATENTS,
    FRESH_SEED,
    NORMAL_SEED,
    CalibrationSet,
    coverage,
    looks_like_standard_normal,
    normal_calibration,
)
from undense.compiler.functions import Function
from undense.compiler.ir import Dense, Graph
from undense.compiler.passes.quantize import quantize
from undense.errors import UndenseError
from undense.runtime.synthetic import mlp, model


def tiny_graph() -> Graph:
    """x[4] -> fc: y = relu(x0), relu(x1)."""
    weight = np.zeros((2, 4))
    weight[0, 0] = weight[1, 1] = 1.0
    return Graph("x", "y", {"x": 4, "y": 2}, (Dense("fc", "x", "y", weight, np.zeros(2), Function("relu")),), (2,))


def clipped_latents() -> np.ndarray:
    """N(0, I) clipped to [-2, 2], with both ends reached: every tensor's range is known exactly."""
    return np.clip(np.random.default_rng(3).standard_normal((4000, 4)), -2.0, 2.0)


def test_coverage_of_a_model_whose_ranges_are_known():
    graph, samples = tiny_graph(), clipped_latents()
    record = coverage(graph, quantize(graph, samples), CalibrationSet(samples, "array"))
    # input [-2, 2] at 8 bits: step 4/255, zero point 0, so codes -128..127 stand for -2.008..1.992 and a
    # value saturates below -128.5 steps or above 127.5 steps = 2.0
    step = 4 / 255
    low, high = -128.5 * step, 127.5 * step
    assert record["input_range"] == pytest.approx([-128 * step, 127 * step])
    inside = NormalDist().cdf(high) - NormalDist().cdf(low)
    assert record["value_inside"] == pytest.approx(inside, abs=1e-12)
    assert record["latent_inside"] == pytest.approx(inside ** 4, abs=1e-12)
    # the ReLU output [0, 2]: step 2/255, zero point -128; it saturates above 255.5 steps
    x_in, fc = record["tensors"]
    assert (x_in["layer"], fc["layer"], fc["tensor"]) == (None, "fc", "y")
    assert fc["range"] == pytest.approx([0.0, 2.0]) and fc["range_before_activation"] is None
    fresh = np.random.default_rng(FRESH_SEED).standard_normal((FRESH_LATENTS, 4)).astype(np.float32)
    input_saturated = (fresh < low) | (fresh > high)
    fc_saturated = fresh[:, :2] > 255.5 * 2 / 255
    assert x_in["saturated_values"] == pytest.approx(input_saturated.mean())
    assert x_in["saturated_latents"] == pytest.approx(input_saturated.any(axis=1).mean())
    assert fc["saturated_values"] == pytest.approx(fc_saturated.mean())
    assert fc["saturated_latents"] == pytest.approx(fc_saturated.any(axis=1).mean())
    assert record["saturated_latents"] == pytest.approx((input_saturated.any(axis=1) | fc_saturated.any(axis=1)).mean())
    assert 0.12 < record["saturated_latents"] < 0.22  # 1 - 0.955^4 = 17% expected
    assert "normal:16000" in record["warning"]  # four times the 4,000 samples it had


def test_a_table_layer_reports_the_range_before_its_activation():
    graph = Graph("x", "y", {"x": 1, "y": 1}, (Dense("fc", "x", "y", np.ones((1, 1)), np.zeros(1),
                                                     Function("sigmoid")),), (1,))
    samples = np.linspace(-3, 3, 301)[:, None]
    (_, fc) = coverage(graph, quantize(graph, samples), CalibrationSet(samples, "array"))["tensors"]
    assert fc["range_before_activation"] == pytest.approx([-3, 3], abs=3 / 255)
    assert fc["range"] == pytest.approx([0, 1 / (1 + np.exp(-3))], abs=1 / 255)


def test_an_activation_alone_takes_its_range_from_its_input_not_the_calibration():
    graph = Graph("x", "y", {"x": 2, "h": 2, "y": 2}, (
        Dense("fc", "x", "h", np.array([[1.0, 0.5], [0.0, 2.0]]), np.zeros(2)),
        Dense("act", "h", "y", np.eye(2), np.zeros(2), Function("tanh"))), (2,))
    samples = np.random.default_rng(0).standard_normal((300, 2))
    x_in, fc, act = coverage(graph, quantize(graph, samples), CalibrationSet(samples, "array"))["tensors"]
    assert (x_in["calibrated"], fc["calibrated"], act["calibrated"]) == (True, True, False)
    assert act["range_before_activation"] == fc["range"]  # looked up on fc's codes


def test_inputs_that_are_not_latents_get_no_invented_coverage():
    graph = tiny_graph()
    samples = np.random.default_rng(0).uniform(0, 10, size=(500, 4))
    record = coverage(graph, quantize(graph, samples), CalibrationSet(samples, "array"))
    assert not record["latent_input"] and "do not look like N(0, I)" in record["latent_input_reason"]
    assert record["value_inside"] is record["saturated_latents"] is record["warning"] is None
    assert all(entry["saturated_latents"] is None for entry in record["tensors"])
    assert record["tensors"][1]["range"] == pytest.approx([0, 10], abs=0.05)


@pytest.mark.parametrize("samples,latent", [
    (np.random.default_rng(0).standard_normal((256, 16)), True),
    (np.random.default_rng(0).standard_normal((256, 16)) * 2, False),
    (np.random.default_rng(0).standard_normal((256, 16)) + 0.5, False),
    (np.zeros((1, 16)), False),
])
def test_what_looks_like_a_latent(samples, latent):
    assert looks_like_standard_normal(samples) is latent


def test_normal_draws_reproducible_latents_as_wide_as_the_input():
    drawn = normal_calibration("normal:64", tiny_graph())
    assert (drawn.source, drawn.seed) == ("normal", NORMAL_SEED)
    np.testing.assert_array_equal(drawn.samples, np.random.default_rng(NORMAL_SEED).standard_normal((64, 4))
                                  .astype(np.float32))


@pytest.mark.parametrize("spec,message", [
    ("normal:", "whole number"), ("normal:0", "whole number"), ("normal:-3", "whole number"),
    ("normal:abc", "whole number"), ("normal:1000001", "1,000,000"), ("gauss:10", "unknown sampler"),
])
def test_malformed_specs_are_one_clear_error(spec, message):
    with pytest.raises(UndenseError, match=message):
        undense.compile(mlp([4, 3], ["Relu"]), calibration=spec)


def test_normal_compiles_are_reproducible_and_recorded(tmp_path):
    built = mlp([8, 16, 6], ["Relu", "Sigmoid"], density=0.5)
    first = undense.compile(built, tmp_path / "a", calibration="normal:300")
    second = undense.compile(built, calibration="normal:300")
    assert first.graph.quant == second.graph.quant
    assert first.report["calibration"] == second.report["calibration"]
    record = json.loads((tmp_path / "a" / "compile.json").read_text())["calibration"]
    assert set(record) == {"source", "path", "samples", "seed", "rule", "latent_input", "latent_input_reason",
                           "input_range", "value_inside", "latent_inside", "fresh_latents", "fresh_seed",
                           "saturated_latents", "tensors", "warning"}
    assert (record["source"], record["samples"], record["seed"], record["latent_input"]) == \
        ("normal", 300, NORMAL_SEED, True)
    assert "0th to 100th percentile" in record["rule"]
    assert [entry["layer"] for entry in record["tensors"]] == [None, "layer0", "layer1"]
    assert set(record["tensors"][0]) == {"layer", "tensor", "calibrated", "range", "range_before_activation",
                                         "saturated_values", "saturated_latents"}


def test_a_calibration_file_still_works_and_a_missing_one_is_a_clear_error(tmp_path):
    path = tmp_path / "z.npy"
    np.save(path, np.random.default_rng(1).standard_normal((200, 4)).astype(np.float32))
    record = undense.compile(mlp([4, 3], ["Relu"]), calibration=path).report["calibration"]
    assert (record["source"], record["path"], record["samples"]) == ("file", str(path), 200)
    with pytest.raises(UndenseError, match="no such calibration file"):
        undense.compile(mlp([4, 3], ["Relu"]), calibration=tmp_path / "missing.npy")


def integer_input_model():
    weight = np.random.default_rng(0).integers(-60, 61, size=(6, 3)).astype(np.int8)
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zero"], ["y"], name="mmi")]
    return model(nodes, {"w": weight, "x_zero": np.array(128, np.uint8)}, 6, 3, input_type=TensorProto.UINT8,
                 output_type=TensorProto.INT32)


def test_a_model_of_integer_codes_says_what_it_cannot_know():
    record = undense.compile(integer_input_model()).report["calibration"]
    assert (record["source"], record["samples"], record["latent_input"]) == ("none", 0, False)
    assert "integer codes" in record["latent_input_reason"]
    assert record["value_inside"] is record["saturated_latents"] is None
    assert not any(entry["calibrated"] for entry in record["tensors"])
    with pytest.raises(UndenseError, match="integer codes"):
        undense.compile(integer_input_model(), calibration="normal:16")
