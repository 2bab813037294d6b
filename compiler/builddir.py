"""The build dir: what the compiler hands every later stage.

    DIR/manifest.json   format version, source model, target, tensors, and every layer's parameters
    DIR/weights.npz     the arrays: sparse weights, biases, multipliers, shifts, tables, row-to-PE maps
    DIR/compile.json    the report (per-layer keys fixed in DESIGN.md)

It is written into a temporary folder beside DIR and moved into place at the
end, so a failure never leaves a half-written build dir; the staging folder of a
write that was killed (.DIR.PID-XXXX, its process gone) is removed by the next
write into DIR.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from undense.compiler.geometry import Conv2d
from undense.compiler.ir import Edge, Fold, QAdd, QDense, QGraph, SparseRows
from undense.compiler.numbers import QuantParams
from undense.compiler.targets import Target, target
from undense.errors import UndenseError

FORMAT_VERSION = 3
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
REPORT = "compile.json"


def _quant_json(params: QuantParams | None) -> dict | None:
    return None if params is None else params.to_json()


def _quant_from(data: dict | None) -> QuantParams | None:
    return None if data is None else QuantParams.from_json(data)


def _layer_json(index: int, node: QDense | QAdd, arrays: dict[str, np.ndarray]) -> dict:
    key = f"layer{index}"
    fold = node.fold
    common = {"name": node.name, "output": node.output, "pe": fold.pe, "lanes": fold.lanes, "groups": fold.groups,
              "cycles": fold.cycles, "cycles_p99": fold.cycles_p99, "placement": fold.placement,
              "requant": _quant_json(node.requant), "arrays": key}
    if isinstance(node, QAdd):
        return {"kind": "add", **common, "inputs": list(node.inputs), "zero_points": list(node.zero_points),
                "multipliers": list(node.multipliers), "shift": node.shift, "features": node.features}
    arrays.update({f"{key}.values": node.weight.values, f"{key}.columns": node.weight.columns,
                   f"{key}.row_ptr": node.weight.row_ptr, f"{key}.bias": node.bias})
    if node.multiplier is not None:
        arrays[f"{key}.multiplier"], arrays[f"{key}.shift"] = node.multiplier, node.shift
    if node.table is not None:
        arrays[f"{key}.table"] = node.table
    if node.kernel is not None:
        arrays[f"{key}.kernel"] = node.kernel
    return {"kind": "dense", **common, "input": node.input, "in_features": node.weight.in_features,
            "out_features": node.out_features, "weight_bits": node.weight_bits, "acc_bits": node.acc_bits,
            "activation": node.activation, "clamp": list(node.clamp) if node.clamp else None,
            "geometry": None if node.geometry is None else node.geometry.to_json()}


def _layer_from(data: dict, arrays) -> QDense | QAdd:
    key = data["arrays"]
    fold = Fold(data["lanes"], data["groups"], data["cycles"], data["cycles_p99"], data["placement"])
    if data["kind"] == "add":
        return QAdd(data["name"], tuple(data["inputs"]), data["output"], tuple(data["zero_points"]),
                    tuple(data["multipliers"]), data["shift"], _quant_from(data["requant"]), data["features"], fold)
    weight = SparseRows(arrays[f"{key}.values"], arrays[f"{key}.columns"], arrays[f"{key}.row_ptr"],
                        data["in_features"])
    optional = {name: arrays[f"{key}.{name}"] if f"{key}.{name}" in arrays else None
                for name in ("multiplier", "shift", "table", "kernel")}
    return QDense(data["name"], data["input"], data["output"], weight, data["weight_bits"], arrays[f"{key}.bias"],
                  data["acc_bits"], requant=_quant_from(data["requant"]),
                  clamp=tuple(data["clamp"]) if data["clamp"] else None, activation=data["activation"],
                  fold=fold, geometry=None if data["geometry"] is None else Conv2d.from_json(data["geometry"]),
                  **optional)


def source_record(source) -> dict:
    if isinstance(source, str | Path) and Path(source).is_file():
        return {"path": str(source), "sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest()}
    return {"path": None, "sha256": None}


def report_digest(directory: Path, name: str) -> str | None:
    """The SHA-256 of a stage's report as it is now, or None where that stage has not run: what a later stage
    records of the reports it read, so that the page can tell when one of them changed since."""
    path = Path(directory) / name
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def write_report(directory: Path, name: str, report: dict) -> Path:
    """A stage's JSON report (compile.json, sim.json, synth.json, ...) in the build dir."""
    path = Path(directory) / name
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def later_results(directory: str | Path) -> list[str]:
    """What a compile into `directory` replaces beyond its own files: the later stages' reports, the Verilog,
    the grid (names, folders with a trailing /); nothing where it is not a build dir."""
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        return []
    return sorted(p.name + "/" * p.is_dir() for p in directory.iterdir() if p.name not in (MANIFEST, WEIGHTS, REPORT))


def remove_stale_staging(directory: Path) -> None:
    """Staging folders beside `directory` left by a write that was killed (its process is gone)."""
    for staging in directory.parent.glob(f".{glob.escape(directory.name)}.*-*"):
        owner = re.fullmatch(rf"\.{re.escape(directory.name)}\.(\d+)-\w+", staging.name)
        if owner and staging.is_dir() and not _running(int(owner[1])):
            shutil.rmtree(staging, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True


def write(graph: QGraph, directory: str | Path, chosen_target: Target, report: dict, source: dict) -> Path:
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir())
                                                          and not (directory / MANIFEST).is_file())):
        raise UndenseError(f"{directory} exists and is not an undense build dir; choose another -o")
    arrays: dict[str, np.ndarray] = {}
    manifest = {
        "format_version": FORMAT_VERSION,
        "undense_version": metadata.version("undense"),
        "source": source,
        "target": {"name": chosen_target.name, "clock_mhz": chosen_target.clock_mhz},
        "input": {"tensor": graph.input, "onnx_name": graph.names.get("input"), "features": graph.sizes[graph.input],
                  "quant": _quant_json(graph.quant[graph.input]), "integer": graph.input_is_integer,
                  "condition_classes": graph.condition_classes},
        "output": {"tensor": graph.output, "onnx_name": graph.names.get("output"), "shape": list(graph.output_shape),
                   "quant": _quant_json(graph.quant[graph.output]), "integer": graph.output_is_integer},
        "tensors": {t: {"features": n, "shape": list(graph.shapes.get(t, (n,))), "quant": _quant_json(graph.quant[t]),
                        "edge": vars(graph.edges[t])} for t, n in graph.sizes.items()},
        "layers": [_layer_json(i, node, arrays) for i, node in enumerate(graph.nodes)],
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.{os.getpid()}-", dir=directory.parent))
    try:
        write_report(staging, MANIFEST, manifest)
        np.savez_compressed(staging / WEIGHTS, **arrays)
        write_report(staging, REPORT, report)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read(directory: str | Path) -> tuple[QGraph, Target, dict]:
    """The graph, the target and the compile report of a build dir."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise UndenseError(f"{directory} is not an undense build dir (no {MANIFEST}); "
                           "make one with `undense compile MODEL.onnx -o DIR`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise UndenseError(f"{manifest_path} is not valid JSON ({error}); compile the model again") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise UndenseError(f"{directory} has build-dir format version {version}; this undense reads version "
                           f"{FORMAT_VERSION}: compile the model again with this version")
    try:
        with np.load(directory / WEIGHTS) as stored:
            arrays = dict(stored)
    except FileNotFoundError:
        raise UndenseError(f"{directory} lacks {WEIGHTS}, which `undense compile` writes beside {MANIFEST}: "
                           "compile the model again") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise UndenseError(f"{directory / WEIGHTS} cannot be read ({error}): compile the model again") from None
    nodes = tuple(_layer_from(layer, arrays) for layer in manifest["layers"])
    graph = QGraph(
        input=manifest["input"]["tensor"], output=manifest["output"]["tensor"],
        sizes={t: info["features"] for t, info in manifest["tensors"].items()}, nodes=nodes,
        quant={t: _quant_from(info["quant"]) for t, info in manifest["tensors"].items()},
        output_shape=tuple(manifest["output"]["shape"]), input_is_integer=manifest["input"]["integer"],
        output_is_integer=manifest["output"]["integer"],
        names={"input": manifest["input"]["onnx_name"], "output": manifest["output"]["onnx_name"]},
        edges={t: Edge(**info["edge"]) for t, info in manifest["tensors"].items()},
        shapes={t: tuple(info["shape"]) for t, info in manifest["tensors"].items()},
        condition_classes=manifest["input"]["condition_classes"])
    report_path = directory / REPORT
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return graph, target(manifest["target"]["name"]), report
