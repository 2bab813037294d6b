"""Calibration: samples drawn from N(0, I) on request (`normal:N`), and how well a calibration covers fresh inputs.

The rule quantize.py follows (numbers.activation_params): each calibrated tensor's codes span the lowest to
the highest value it takes on the calibration samples (the 0th and 100th percentile), widened to include 0.
A value more than half a step beyond either end saturates at the end code, as ONNX QuantizeLinear does. A
layer with a table activation (Sigmoid, Tanh, LeakyReLU) has two calibrated ranges, its input's (where
requantization saturates) and its output's; ReLU, Clip and Add one, their output's.

Calibration on a few hundred samples leaves the tails of a latent z ~ N(0, I) outside those ranges, so for an
input that is a latent vector the record measures the coverage: the chance that a fresh value, and a whole
fresh latent, falls inside the input's range (computed), and the share of fresh latents whose value at each
tensor falls beyond its range (measured on the float graph). It checks every tensor at its output, so a
table's clipped input counts where it shows: clipping a Sigmoid's input at +6.7 leaves its output in range.
"""
import re
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from undense.compiler.ir import Dense, Graph, QAdd, QGraph
from undense.compiler.numbers import QuantParams
from undense.compiler.reference import run_float
from undense.errors import UndenseError

# Seeds no other part of undense draws latents from (sim, generate and bench use 0, 1 and 2024), so that a
# compile is reproducible and coverage is measured on latents the calibration never saw.
NORMAL_SEED = 1301
FRESH_SEED = 1302
FRESH_LATENTS = 1000
POOR_COVERAGE = 0.001  # warn when more than 1 in 1,000 fresh latents saturates somewhere
SUGGESTED_SAMPLES = 4096
MAX_NORMAL_SAMPLES = 1_000_000  # more would take gigabytes of calibration values and no better ranges
LATENT_TOLERANCE = 0.25
RULE = ("min/max (0th to 100th percentile of the calibration values, widened to include 0); a value beyond "
        "saturates at the end code")
SPEC = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_]+):(?P<count>.*)")


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    samples: np.ndarray | None
    source: str  # file | bundled | normal | array | none
    path: str | None = None
    seed: int | None = None


def is_spec(text: str) -> bool:
    """`text` is written like a sampler spec (`normal:4096`) rather than a file name."""
    return SPEC.fullmatch(text) is not None


def normal_calibration(spec: str, graph: Graph) -> CalibrationSet:
    """`normal:N`: N latents z ~ N(0, I) as wide as the model's input, always the same ones (NORMAL_SEED)."""
    match = SPEC.fullmatch(spec)
    if match is None or match["kind"] != "normal":
        raise UndenseError(f"calibration '{spec}': unknown sampler; give a .npy file [N, features] or "
                           "normal:N (N samples of N(0, I)), e.g. normal:4096")
    count = match["count"]
    if not count.isdigit() or not 0 < int(count) <= MAX_NORMAL_SAMPLES:
        raise UndenseError(f"calibration '{spec}': N must be a whole number of samples from 1 to "
                           f"{MAX_NORMAL_SAMPLES:,}, e.g. normal:4096")
    if graph.input_is_integer:
        raise UndenseError(f"calibration '{spec}': the model's input is integer codes, not a latent vector; "
                           "give a .npy file of typical inputs [N, features]")
    samples = np.random.default_rng(NORMAL_SEED).standard_normal((int(count), graph.sizes[graph.input]))
    return CalibrationSet(samples.astype(np.float32), "normal", seed=NORMAL_SEED)


def looks_like_standard_normal(samples: np.ndarray) -> bool:
    """Every feature's mean within LATENT_TOLERANCE of 0 and its standard deviation within it of 1."""
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    return len(x) >= 2 and bool(np.all(np.abs(x.mean(axis=0)) <= LATENT_TOLERANCE)
                                and np.all(np.abs(x.std(axis=0) - 1.0) <= LATENT_TOLERANCE))


def _latent_input(graph: Graph, calibration: CalibrationSet) -> tuple[bool, str]:
    if graph.input_is_integer:
        return False, "the input is integer codes, not a latent vector"
    if calibration.source == "normal":
        return True, "calibrated on samples of N(0, I)"
    if calibration.samples is None:
        return False, "no calibration samples, so undense cannot tell whether the input is a latent z ~ N(0, I)"
    if looks_like_standard_normal(calibration.samples):
        return True, (f"the calibration samples look like N(0, I) (every feature's mean within {LATENT_TOLERANCE:g} "
                      f"of 0 and standard deviation within {LATENT_TOLERANCE:g} of 1)")
    return False, "the calibration samples do not look like N(0, I), so the input is not taken for a latent vector"


def _unsaturated(params: QuantParams) -> tuple[float, float]:
    """The real interval quantized without saturating: the end codes' values, plus half a step outwards."""
    return ((params.qmin - params.zero_point - 0.5) * params.scale,
            (params.qmax - params.zero_point + 0.5) * params.scale)


def _saturated(params: QuantParams, values: np.ndarray) -> np.ndarray:
    low, high = _unsaturated(params)
    return (values < low) | (values > high)


def _points(qgraph: QGraph) -> list[tuple[str | None, str, QuantParams | None]]:
    """(layer, tensor, the parameters requantization lands in before a table) for the input and every layer."""
    before = [None if isinstance(node, QAdd) or node.table is None else node.requant for node in qgraph.nodes]
    return [(None, qgraph.input, None), *((node.name, node.output, params)
                                          for node, params in zip(qgraph.nodes, before, strict=True))]


def coverage(graph: Graph, qgraph: QGraph, calibration: CalibrationSet) -> dict:
    """compile.json's `calibration` record (docs/compiler.md); `graph` is the float graph `qgraph` came from."""
    latent, reason = _latent_input(graph, calibration)
    q_in = qgraph.quant[graph.input]
    record = {"source": calibration.source, "path": calibration.path,
              "samples": 0 if calibration.samples is None else len(calibration.samples), "seed": calibration.seed,
              "rule": RULE, "latent_input": latent, "latent_input_reason": reason, "input_range": _range(q_in),
              "value_inside": None, "latent_inside": None, "fresh_latents": None, "fresh_seed": None,
              "saturated_latents": None, "tensors": [], "warning": None}
    for layer, tensor, before_activation in _points(qgraph):
        record["tensors"].append({"layer": layer, "tensor": tensor, "calibrated": _calibrated(graph, tensor),
                                  "range": _range(qgraph.quant[tensor]),
                                  "range_before_activation": _range(before_activation),
                                  "saturated_values": None, "saturated_latents": None})
    if latent:
        _measure(graph, qgraph, record)
        record["warning"] = _warning(record)
    return record


def _calibrated(graph: Graph, tensor: str) -> bool:
    """The tensor's range comes from the calibration: the model does not fix it, and it is not the output of an
    activation alone, whose range is its function over every input code (passes/quantize.py)."""
    producer = graph.producer(tensor)
    return tensor not in graph.fixed_quant and not (isinstance(producer, Dense) and producer.is_elementwise_function)


def _range(params: QuantParams | None) -> list[float] | None:
    """The real values of the lowest and the highest code."""
    return None if params is None else [float(params.dequantize(params.qmin)), float(params.dequantize(params.qmax))]


def _measure(graph: Graph, qgraph: QGraph, record: dict) -> None:
    """Fill in the coverage of a latent input: the input range's share of N(0, 1), computed, and the
    saturation met by FRESH_LATENTS fresh latents at each tensor, measured on the float graph."""
    features = graph.sizes[graph.input]
    low, high = _unsaturated(qgraph.quant[graph.input])
    inside = NormalDist().cdf(high) - NormalDist().cdf(low)
    record.update(value_inside=inside, latent_inside=inside ** features, fresh_latents=FRESH_LATENTS,
                  fresh_seed=FRESH_SEED)
    latents = np.random.default_rng(FRESH_SEED).standard_normal((FRESH_LATENTS, features)).astype(np.float32)
    values, _ = run_float(graph, latents)
    anywhere = np.zeros(FRESH_LATENTS, dtype=bool)
    for entry in record["tensors"]:
        params = qgraph.quant[entry["tensor"]]
        if params is None:  # a raw accumulator: nothing saturates
            continue
        saturated = _saturated(params, values[entry["tensor"]])
        anywhere |= saturated.any(axis=1)
        entry.update(saturated_values=float(saturated.mean()), saturated_latents=float(saturated.any(axis=1).mean()))
    record["saturated_latents"] = float(anywhere.mean())


def _warning(record: dict) -> str | None:
    share = record["saturated_latents"]
    if share <= POOR_COVERAGE:
        return None
    where = ", ".join(f"{entry['layer'] or 'input'} {entry['saturated_latents']:.1%}"
                      for entry in record["tensors"] if entry["saturated_latents"])
    spec = f"normal:{max(SUGGESTED_SAMPLES, 4 * record['samples'])}"
    return (f"{share:.1%} of {record['fresh_latents']:,} fresh N(0, I) latents saturate somewhere ({where}), "
            f"above {POOR_COVERAGE:.1%}; calibrate on more N(0, I) samples: --calib {spec} "
            f"(calibration=\"{spec}\" in Python)")
