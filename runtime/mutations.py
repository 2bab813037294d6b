"""Mutation fuzz: seeded damage to the project's own models, each driven through the real command line.

A seed picks a kind of damage (KINDS, in turn) and a source model it applies to,
writes the mutant, and runs `undense compile MUTANT -o DIR` in-process. What
may happen next:

- exit 0, and then `undense run DIR` also exits 0 with finite outputs;
- exit 2 with one `Error:` line, no traceback, and nothing written (no DIR, no
  staging folder beside it).

Anything else (exit 1 or 3, a traceback, a warning, an escaped exception) is a
failure, recorded with its seed, kind and source so that `mutant(seed)`
rebuilds it. A warning a user would see counts as a failure too, and numpy's
RuntimeWarnings (overflow, NaN in a cast) are raised, as in the test suite.

    python -m undense.runtime.mutations -n 1000 [--first-seed 0] [-o mutations.json]
"""
import argparse
import copy
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from undense.runtime import synthetic

EXPORTED = Path("tests/compiler/exported")
CALIBRATION_SAMPLES = 64
OPSETS = (1, 5, 99)
# Real ONNX ops a node may be swapped to: supported ones, unsupported ones, and ones of other arity.
OPS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "Identity", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
       "Mul", "BatchNormalization", "QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "MatMulInteger",
       "Softmax", "TopK", "Conv", "Sub", "Div", "Transpose", "Concat", "Exp", "Sqrt", "Cast", "Shape", "Gather",
       "MaxPool", "Constant")
DATA_TYPES = (0, 39, 100, TensorProto.STRING, TensorProto.INT8, TensorProto.INT64, TensorProto.DOUBLE,
              TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT4, TensorProto.FLOAT8E4M3FN,
              TensorProto.COMPLEX64, TensorProto.BOOL)
BAD_NUMBERS = (np.nan, np.inf, -np.inf)
BAD_SCALES = (0.0, -0.02, np.nan, np.inf, 1e-30, 1e30)
# What Python does not show a user by default; any other warning printed counts as a failure.
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@dataclass(frozen=True)
class Source:
    """A model to mutate: its file (bytes as stored, external data beside) or a builder from runtime.synthetic."""

    name: str
    path: Path | None = None
    build: Callable[[], onnx.ModelProto] | None = None

    def model(self) -> onnx.ModelProto:
        """The model with any external data read in, so that it saves as one self-contained file."""
        return onnx.load(str(self.path)) if self.path else self.build()

    def stored(self) -> tuple[bytes, dict[str, bytes]]:
        """The file's bytes as stored, and the files beside it that it refers to (external data)."""
        if self.path is None:
            return self.build().SerializeToString(), {}
        beside = {}
        for tensor in onnx.load(str(self.path), load_external_data=False).graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    beside[entry.value] = (self.path.parent / entry.value).read_bytes()
        return self.path.read_bytes(), beside


def onnxruntime_qdq(weight_type: str) -> onnx.ModelProto:
    """A small MLP as onnxruntime's quantize_static writes it: QDQ, weights per channel of `weight_type`
    (QInt8, or QUInt8 with zero points), calibrated on 64 normal samples."""
    from onnxruntime.quantization import QuantType

    samples = np.random.default_rng(3).standard_normal((64, 12)).astype(np.float32)
    logging.disable(logging.WARNING)  # its advice to pre-process the model first
    try:
        with tempfile.TemporaryDirectory(prefix="undense-mutant-") as folder:
            return synthetic.onnxruntime_quantized(
                synthetic.mlp([12, 32, 10], ["Relu", "Tanh"], 0.4, 3), samples, folder, per_channel=True,
                weight_type=QuantType[weight_type], activation_type=QuantType.QUInt8)
    finally:
        logging.disable(logging.NOTSET)


SOURCES = (
    Source("generator", Path("models/digits/generator.onnx")),
    Source("dynamo_external", EXPORTED / "dynamo_external.onnx"),
    Source("legacy_batchnorm", EXPORTED / "legacy_batchnorm.onnx"),
    Source("mlp_matmul", build=lambda: synthetic.mlp([10, 24, 16, 8], ["LeakyRelu", "Tanh", "Sigmoid"], 0.4, 1,
                                                     use_gemm=False)),
    Source("residual", build=lambda: synthetic.residual_block(12)),
    Source("assorted_ops", build=synthetic.assorted_ops),
    Source("qdq", build=synthetic.qdq_mlp),
    Source("ort_qdq_int8", build=partial(onnxruntime_qdq, "QInt8")),
    Source("ort_qdq_uint8", build=partial(onnxruntime_qdq, "QUInt8")),
    Source("qlinear_matmul", build=synthetic.qlinear_matmul),
    Source("matmul_integer", build=synthetic.matmul_integer),
)


@cache
def sources(root: Path = Path(".")) -> tuple[Source, ...]:
    """The sources whose files exist under `root` (the repository), and every synthetic one."""
    return tuple(Source(s.name, root / s.path) if s.path else s for s in SOURCES
                 if s.path is None or (root / s.path).is_file())


@cache
def _model(source: Source) -> onnx.ModelProto:
    return source.model()


@dataclass(frozen=True)
class Mutant:
    seed: int
    kind: str
    source: str
    detail: str                      # what was changed, in words
    data: bytes                      # the mutated file
    beside: dict[str, bytes] = field(default_factory=dict)  # files next to it (external data)


# -- the kinds of damage: each takes a copy of the model (or its bytes) and a generator, and returns a
#    description of what it changed, or None where it does not apply to this model --------------------------

def flip_bytes(data: bytearray, rng) -> str:
    positions = sorted(int(p) for p in rng.choice(len(data), size=int(rng.integers(1, 9)), replace=False))
    for position in positions:
        data[position] ^= int(rng.integers(1, 256))
    return f"bytes flipped at {positions}"


def truncate(data: bytearray, rng) -> str:
    length = int(rng.integers(0, len(data)))
    del data[length:]
    return f"cut to {length} bytes"


def swap_op(model: onnx.ModelProto, rng) -> str:
    node = _pick(rng, model.graph.node)
    old, node.op_type = node.op_type, str(rng.choice([op for op in OPS if op != node.op_type]))
    return f"node '{node.name}' {old} -> {node.op_type}"


def drop_initializer(model: onnx.ModelProto, rng) -> str | None:
    if not model.graph.initializer:
        return None
    index = int(rng.integers(len(model.graph.initializer)))
    name = model.graph.initializer[index].name
    del model.graph.initializer[index]
    return f"initializer '{name}' dropped"


def change_dims(model: onnx.ModelProto, rng) -> str | None:
    graph = model.graph
    infos = [v for v in [*graph.input, *graph.output, *graph.value_info] if v.type.tensor_type.HasField("shape")]
    if rng.random() < 0.5 and graph.initializer:
        tensor = _pick(rng, graph.initializer)
        if rng.random() < 0.5 and len(tensor.dims) >= 2:  # same size, other shape
            tensor.dims[:] = list(tensor.dims)[::-1]
            return f"initializer '{tensor.name}' dims reversed to {list(tensor.dims)}"
        if not tensor.dims:
            tensor.dims.append(int(rng.choice([0, 1, 2])))
            return f"initializer '{tensor.name}' made {list(tensor.dims)}"
        axis = int(rng.integers(len(tensor.dims)))
        tensor.dims[axis] = _other_size(rng, tensor.dims[axis])
        return f"initializer '{tensor.name}' dim {axis} -> {tensor.dims[axis]}"
    if not infos:
        return None
    info = _pick(rng, infos)
    dims = info.type.tensor_type.shape.dim
    choice = rng.random()
    if choice < 0.15 or not dims:
        dims.add().dim_value = int(rng.integers(1, 5))
        return f"'{info.name}' gets an extra dim"
    axis = int(rng.integers(len(dims)))
    if choice < 0.3:
        del dims[axis]
        return f"'{info.name}' loses dim {axis}"
    if choice < 0.45:
        dims[axis].dim_param = "n"
        return f"'{info.name}' dim {axis} made symbolic"
    if choice < 0.55:
        dims[axis].Clear()
        return f"'{info.name}' dim {axis} made unknown"
    dims[axis].dim_value = _other_size(rng, dims[axis].dim_value if dims[axis].HasField("dim_value") else 4)
    return f"'{info.name}' dim {axis} -> {dims[axis].dim_value}"


def _other_size(rng, size: int) -> int:
    """A size near `size` (never more than twice it, so that no mutant needs much memory)."""
    return int(rng.choice([v for v in (0, 1, size - 1, size + 1, size // 2, 2 * size) if v != size and v >= 0]))


def change_attribute(model: onnx.ModelProto, rng) -> str:
    node = _pick(rng, model.graph.node)
    if not node.attribute or rng.random() < 0.25:
        try:
            schema = onnx.defs.get_schema(node.op_type, 17)
            names = sorted(schema.attributes)
        except Exception:  # an op without a schema: an attribute nobody knows
            names = []
        name = str(rng.choice(names)) if names else "bogus"
        node.attribute.append(helper.make_attribute(name, int(rng.choice([-1, 0, 1, 2]))))
        return f"node '{node.name}' gets {name}={node.attribute[-1].i}"
    attribute = _pick(rng, node.attribute)
    if rng.random() < 0.15:
        node.attribute.remove(attribute)
        return f"node '{node.name}' loses attribute '{attribute.name}'"
    kind = attribute.type
    if kind == onnx.AttributeProto.INT:
        attribute.i = int(rng.choice([-2, -1, 0, 1, 2, 3, 2**31 - 1, -(2**31)]))
        value = attribute.i
    elif kind == onnx.AttributeProto.FLOAT:
        attribute.f = float(rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30, -attribute.f]))
        value = attribute.f
    elif kind == onnx.AttributeProto.INTS:
        attribute.ints[:] = [int(v) for v in rng.integers(-2, 4, size=int(rng.integers(0, 4)))]
        value = list(attribute.ints)
    elif kind == onnx.AttributeProto.FLOATS:
        attribute.floats[:] = [float(v) for v in rng.choice([np.nan, 0.0, 1.0, -1.0], size=int(rng.integers(0, 4)))]
        value = list(attribute.floats)
    elif kind == onnx.AttributeProto.TENSOR:
        values = numpy_helper.to_array(attribute.t).astype(np.float64)
        values = values.reshape(-1)[: max(1, values.size // 2)] if rng.random() < 0.5 else values * -1e30
        attribute.t.CopyFrom(numpy_helper.from_array(values.astype(np.float32), attribute.t.name))
        value = f"a tensor of {values.size} values"
    else:
        attribute.Clear()
        attribute.name, attribute.type, attribute.s = "bogus", onnx.AttributeProto.STRING, b"bogus"
        value = "a string"
    return f"node '{node.name}' attribute '{attribute.name}' -> {value}"


def duplicate_output(model: onnx.ModelProto, rng) -> str:
    graph = model.graph
    produced = [o for n in graph.node for o in n.output if o not in {v.name for v in graph.output}]
    if produced and rng.random() < 0.4:
        name = str(rng.choice(produced))
        graph.output.append(helper.make_value_info(name, onnx.TypeProto()))
        return f"'{name}' made a second output"
    output = _pick(rng, graph.output)
    graph.output.append(copy.deepcopy(output))
    return f"output '{output.name}' duplicated"


def cycle(model: onnx.ModelProto, rng) -> str | None:
    """A node reads the output of itself or of a node after it."""
    nodes = model.graph.node
    first = int(rng.integers(len(nodes)))
    later = int(rng.integers(first, len(nodes)))
    if not nodes[first].input or not nodes[later].output:
        return None
    index = int(rng.integers(len(nodes[first].input)))
    nodes[first].input[index] = nodes[later].output[0]
    return f"node '{nodes[first].name}' input {index} reads '{nodes[later].output[0]}' of node '{nodes[later].name}'"


def nan_inf_weights(model: onnx.ModelProto, rng) -> str | None:
    floats = _float_tensors(model)
    if not floats:
        return None
    tensor = _pick(rng, floats)
    values = numpy_helper.to_array(tensor).copy()
    if values.size == 0:
        return None
    positions = rng.choice(values.size, size=int(rng.integers(1, min(4, values.size) + 1)), replace=False)
    chosen = rng.choice(BAD_NUMBERS, size=len(positions))
    values.reshape(-1)[positions] = chosen
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return f"'{tensor.name}' gets {', '.join(map(str, chosen))} at {sorted(positions.tolist())}"


def cut_initializer_shape(model: onnx.ModelProto, rng) -> str | None:
    candidates = [t for t in model.graph.initializer if t.dims and max(t.dims) > 1]
    if not candidates:
        return None
    tensor = _pick(rng, candidates)
    values = numpy_helper.to_array(tensor)
    if rng.random() < 0.3:
        values = values.reshape(-1)  # a dimension less (or a matrix made a vector)
    else:
        axis = int(rng.choice([a for a, d in enumerate(values.shape) if d > 1]))
        values = np.take(values, range(int(rng.integers(1, values.shape[axis]))), axis=axis)
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return f"initializer '{tensor.name}' cut to {list(values.shape)}"


def drop_input(model: onnx.ModelProto, rng) -> str:
    index = int(rng.integers(len(model.graph.input)))
    name = model.graph.input[index].name
    del model.graph.input[index]
    return f"input '{name}' dropped"


def change_opset(model: onnx.ModelProto, rng) -> str:
    version = int(rng.choice(OPSETS))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = version
    return f"opset {version}"


def change_data_type(model: onnx.ModelProto, rng) -> str | None:
    if not model.graph.initializer:
        return None
    tensor = _pick(rng, model.graph.initializer)
    tensor.data_type = int(rng.choice([t for t in DATA_TYPES if t != tensor.data_type]))
    return f"initializer '{tensor.name}' data type -> {tensor.data_type}"


def bad_scale(model: onnx.ModelProto, rng) -> str | None:
    scales = _quantization_inputs(model, {"QuantizeLinear": (1,), "DequantizeLinear": (1,),
                                          "QLinearMatMul": (1, 4, 6)})
    if not scales:
        return None
    tensor = _pick(rng, scales)
    value = rng.choice(BAD_SCALES)
    values = numpy_helper.to_array(tensor).copy()
    values.reshape(-1)[int(rng.integers(max(values.size, 1)))] = value
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return f"scale '{tensor.name}' gets {value}"


def bad_zero_point(model: onnx.ModelProto, rng) -> str | None:
    """A zero point out of its type's range (stored widened, as ONNX allows), or of another type than its codes."""
    points = _quantization_inputs(model, {"QuantizeLinear": (2,), "DequantizeLinear": (2,),
                                          "QLinearMatMul": (2, 5, 7), "MatMulInteger": (2, 3)})
    if not points:
        return None
    tensor = _pick(rng, points)
    values = numpy_helper.to_array(tensor)
    if rng.random() < 0.5:
        other = TensorProto.INT8 if values.dtype != np.int8 else TensorProto.UINT8
        replacement = helper.make_tensor(tensor.name, other, values.shape, values.astype(np.int64) % 100)
        tensor.CopyFrom(replacement)
        return f"zero point '{tensor.name}' made type {other}"
    stored = TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    stored.int32_data.extend([int(rng.choice([300, -200, 70000]))] * max(values.size, 1))
    tensor.CopyFrom(stored)
    return f"zero point '{tensor.name}' holds {stored.int32_data[0]}"


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _float_tensors(model: onnx.ModelProto) -> list[TensorProto]:
    floats = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    constants = [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    return floats + [t for t in constants if t.data_type == TensorProto.FLOAT]


def _quantization_inputs(model: onnx.ModelProto, positions: dict[str, tuple[int, ...]]) -> list[TensorProto]:
    names = {n.input[i] for n in model.graph.node for i in positions.get(n.op_type, ()) if i < len(n.input)}
    return [t for t in model.graph.initializer if t.name in names]


BYTE_KINDS = {"flip_bytes": flip_bytes, "truncate": truncate}
MODEL_KINDS = {f.__name__: f for f in (swap_op, drop_initializer, change_dims, change_attribute, duplicate_output,
                                       cycle, nan_inf_weights, cut_initializer_shape, drop_input, change_opset,
                                       change_data_type, bad_scale, bad_zero_point)}
KINDS = (*BYTE_KINDS, *MODEL_KINDS)


def mutant(seed: int, root: Path = Path(".")) -> Mutant:
    """The mutant of a seed: kind KINDS[seed % len(KINDS)], on the first source (in a seeded order) it applies to."""
    kind = KINDS[seed % len(KINDS)]
    rng = np.random.default_rng(seed)
    candidates = sources(root)
    for index in rng.permutation(len(candidates)):
        source = candidates[int(index)]
        if kind in BYTE_KINDS:
            data, beside = source.stored()
            data = bytearray(data)
            detail = BYTE_KINDS[kind](data, rng)
            return Mutant(seed, kind, source.name, detail, bytes(data), beside)
        model = copy.deepcopy(_model(source))
        detail = MODEL_KINDS[kind](model, rng)
        if detail is not None:
            return Mutant(seed, kind, source.name, detail, model.SerializeToString())
    raise ValueError(f"no source model takes a {kind} mutation")


# -- running a mutant through the command line --------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    seed: int
    kind: str
    source: str
    detail: str
    outcome: str           # "exit_0", "exit_2" or "failure"
    exit_code: int | None
    message: str           # the first line printed, or why it is a failure

    def to_json(self) -> dict:
        return self.__dict__.copy()


def run_mutant(seed: int, root: Path = Path(".")) -> Outcome:
    made = mutant(seed, root)
    calib = _calibration(made.source, root)
    with tempfile.TemporaryDirectory(prefix="undense-mutant-") as scratch:
        folder = Path(scratch)
        path = folder / "mutant.onnx"
        path.write_bytes(made.data)
        for name, data in made.beside.items():
            (folder / name).write_bytes(data)
        arguments = ["compile", str(path), "-o", str(folder / "build")]
        if calib is not None:
            np.save(folder / "calib.npy", calib)
            arguments += ["--calib", str(folder / "calib.npy")]
        before = sorted(p.name for p in folder.iterdir())
        code, output, problem = _invoke(arguments)
        after = sorted(p.name for p in folder.iterdir())
        first_line = output.strip().splitlines()[0] if output.strip() else ""

        def outcome(kind: str, message: str) -> Outcome:
            return Outcome(seed, made.kind, made.source, made.detail, kind, code, message)

        if problem:
            return outcome("failure", problem)
        if code == 2:
            lines = [line for line in output.splitlines() if line.strip()]
            if len(lines) != 1 or not lines[0].startswith("Error:"):
                return outcome("failure", f"exit 2 without exactly one Error: line: {output.strip()[:500]}")
            if after != before:
                return outcome("failure", f"exit 2 but it wrote {sorted(set(after) - set(before))}")
            return outcome("exit_2", first_line)
        if code != 0:
            left = f" (and it left {sorted(set(after) - set(before))})" if after != before else ""
            return outcome("failure", f"exit {code}: {first_line}{_crash_tail(first_line)}{left}")
        if set(after) - set(before) != {"build"}:
            return outcome("failure", f"exit 0 but it left {sorted(set(after) - set(before))}")
        return _check_run(folder, seed, outcome)


def _check_run(folder: Path, seed: int, outcome) -> Outcome:
    """After a compile that succeeded: `undense run` on the build dir must work and give finite outputs."""
    from undense.runtime.compiled import load

    inputs = load(folder / "build").random_inputs(8, seed)
    np.save(folder / "x.npy", inputs)
    code, output, problem = _invoke(["run", str(folder / "build"), "--input", str(folder / "x.npy"),
                                     "-o", str(folder / "y.npy")])
    if problem or code != 0:
        return outcome("failure", problem or f"compiled, but `undense run` exits {code}: {output.strip()[:500]}")
    if not np.all(np.isfinite(np.load(folder / "y.npy"))):
        return outcome("failure", "compiled, but `undense run` gives outputs that are not finite")
    return outcome("exit_0", "compiled and ran")


def _invoke(arguments: list[str]) -> tuple[int | None, str, str | None]:
    """Exit code, everything printed, and what makes it a failure whatever the code: a traceback, a warning a
    user would see (a RuntimeWarning is raised, so it ends as an internal error), an exception that escaped."""
    from undense.runtime.cli import main

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", RuntimeWarning)
        result = CliRunner().invoke(main, arguments)
    output = result.output
    shown = [w for w in caught if not issubclass(w.category, HIDDEN_WARNINGS)]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return result.exit_code, output, f"{type(result.exception).__name__} escaped: {result.exception}"
    if "Traceback" in output:
        return result.exit_code, output, f"a traceback was printed: {output.strip()[-500:]}"
    if shown:
        return result.exit_code, output, f"a warning was printed: {shown[0].category.__name__}: {shown[0].message}"
    return result.exit_code, output, None


def _crash_tail(line: str) -> str:
    """The last line of the traceback file an internal error names, to read the failure without opening it."""
    path = line.rpartition("the traceback is in ")[2].partition(":")[0]
    if path and Path(path).is_file():
        return f" [{Path(path).read_text().strip().splitlines()[-1]}]"
    return ""


@cache
def _calibration(source_name: str, root: Path) -> np.ndarray | None:
    source = next(s for s in sources(root) if s.name == source_name)
    graph_input = _model(source).graph.input[0].type.tensor_type
    if graph_input.elem_type != TensorProto.FLOAT:
        return None
    features = int(np.prod([d.dim_value for d in graph_input.shape.dim[1:]]))
    return np.random.default_rng(0).standard_normal((CALIBRATION_SAMPLES, features)).astype(np.float32)


def fuzz(count: int, first_seed: int = 0, root: Path = Path("."), progress=lambda done, total: None) -> dict:
    """Run `count` mutants from `first_seed`: the counts by outcome, kind and source, every failure, seconds."""
    start = time.perf_counter()
    outcomes = []
    for seed in range(first_seed, first_seed + count):
        outcomes.append(run_mutant(seed, root))
        progress(len(outcomes), count)
    return summary(outcomes, time.perf_counter() - start, first_seed)


def summary(outcomes: list[Outcome], seconds: float, first_seed: int = 0) -> dict:
    def counts(selected: list[Outcome]) -> dict:
        return {"count": len(selected), **{kind: sum(o.outcome == kind for o in selected)
                                           for kind in ("exit_0", "exit_2")},
                "failures": sum(o.outcome == "failure" for o in selected)}

    return {"command": f"python -m undense.runtime.mutations -n {len(outcomes)} --first-seed {first_seed}",
            "first_seed": first_seed, **counts(outcomes),
            "by_kind": {kind: counts([o for o in outcomes if o.kind == kind]) for kind in KINDS},
            "by_source": {name: counts([o for o in outcomes if o.source == name])
                          for name in sorted({o.source for o in outcomes})},
            "failed": [o.to_json() for o in outcomes if o.outcome == "failure"],
            "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m undense.runtime.mutations", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--count", type=int, default=1000, help="number of mutants (default 1000)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first mutant (default 0)")
    parser.add_argument("-o", "--output", type=Path, help="write the summary as JSON here")
    options = parser.parse_args(argv)
    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"{done}/{total}", file=sys.stderr, flush=True)

    figures = fuzz(options.count, options.first_seed, progress=progress)
    if options.output:
        options.output.write_text(json.dumps(figures, indent=2) + "\n")
    for failure in figures["failed"]:
        print(f"FAIL seed {failure['seed']} ({failure['kind']} of {failure['source']}: {failure['detail']}): "
              f"{failure['message']}")
    print(f"{figures['count']} mutants in {figures['seconds']:.0f} s: {figures['exit_0']} compiled and ran, "
          f"{figures['exit_2']} refused with one Error: line, {figures['failures']} failures")
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
