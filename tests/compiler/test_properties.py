"""Property tests: on random small sparse MLPs the golden executor stays within the quantization error
of the float model, as computed independently by onnxruntime."""
import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import undense
from undense.compiler.numbers import MULTIPLIER_BITS
from undense.runtime.synthetic import mlp

LIPSCHITZ = {"identity": 1.0, "relu": 1.0, "leaky_relu": 1.0, "tanh": 1.0, "sigmoid": 0.25}
FUNCTIONS = {None: lambda v: v, "Relu": lambda v: np.maximum(v, 0), "LeakyRelu": lambda v: np.where(v >= 0, v, 0.1 * v),
             "Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Tanh": np.tanh}


def float_forward_with_error_bound(graph, built, activations, x):
    """The float model in plain numpy, and the worst-case |golden - float| of every output.

    Per layer: the input error through |W| (plus half a weight step), half a weight step times |x|,
    half a bias step, half a requantization step and the fixed-point multiplier's relative error,
    then the activation's Lipschitz constant, and half an output step where a table rounds again.
    """
    weights = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in built.graph.initializer}
    value = x.astype(np.float64)
    error = np.full(x.shape, 0.5 * graph.quant[graph.input].scale)
    for index, node in enumerate(graph.nodes):
        weight, bias = weights[f"layer{index}.weight"], weights[f"layer{index}.bias"]
        largest = np.abs(weight).max(axis=1)
        step = np.where(largest > 0, largest, 1.0) / (2 ** (node.weight_bits - 1) - 1)  # an all-zero row gets 1
        magnitude = np.abs(value) + error
        pre = value @ weight.T + bias
        pre_error = (error @ (np.abs(weight) + 0.5 * step[:, None]).T
                     + 0.5 * step * magnitude.sum(axis=1, keepdims=True)
                     + 0.5 * graph.quant[node.input].scale * step
                     + 0.5 * node.requant.scale
                     + (np.abs(pre) + 1) * 2.0 ** -(MULTIPLIER_BITS - 1))
        error = LIPSCHITZ[node.activation] * pre_error
        if node.table is not None:
            error = error + 0.5 * graph.quant[node.output].scale
        value = FUNCTIONS[activations[index]](pre)
    return value, error


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.integers(2, 24), min_size=3, max_size=5),
    activations=st.lists(st.sampled_from(["Relu", "LeakyRelu", "Sigmoid", "Tanh", None]), min_size=4, max_size=4),
    density=st.floats(0.1, 0.8),
    bits=st.integers(4, 8),
    seed=st.integers(0, 2**16),
)
def test_golden_stays_within_the_quantization_error(widths, activations, density, bits, seed):
    built = mlp(widths, activations[: len(widths) - 1], density=density, seed=seed)
    x = np.random.default_rng(seed).normal(size=(64, widths[0])).astype(np.float32)
    activations = activations[: len(widths) - 1]
    compiled = undense.compile(built, bits=bits, calibration=x)
    assume(len(compiled.graph.nodes) == len(widths) - 1)  # a layer whose weights happen to be diagonal is fused
    expected, bound = float_forward_with_error_bound(compiled.graph, built, activations, x)
    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-5)
    error = np.abs(compiled.run(x) - expected)
    assert np.all(error <= bound), f"worst excess {np.max(error - bound)}"
    assert np.mean(error) <= 0.5 * np.mean(bound)  # the bound is a worst case; typical errors sit well inside
