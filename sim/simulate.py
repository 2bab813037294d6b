"""Cycle-accurate simulation of a compiled model: its Verilog on Verilator, compared bit for bit with golden."""
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from undense.compiler import activity, builddir, golden
from undense.compiler.ir import QDense, QGraph
from undense.errors import UndenseError
from undense.hw.emit import current_verilog, weights_file
from undense.hw.top import code_shape, event_ports, output_lanes
from undense.sim import bulk

SIM_REPORT = "sim.json"
BUDGET_FACTOR = 8  # a run may take this many times the predicted cycles before it counts as hung


@dataclass(frozen=True)
class Simulation:
    codes: np.ndarray     # the accelerator's output codes, [images, features]
    expected: np.ndarray  # golden's
    report: dict


def ideal_cycles_per_image(graph: QGraph, events: dict[str, dict[str, int]], images: int) -> float:
    """The weight entries the busiest layer issued per image over its processing elements (each into an
    accumulator): its work spread perfectly evenly, the bound no folding of it can beat."""
    return max(events[n.name]["acc_updates"] / images / n.fold.pe for n in graph.nodes if isinstance(n, QDense))


def steady_state_cycles(last_output: np.ndarray) -> float:
    """Cycles between images once the pipeline is full: the mean gap over the second half of the run (the
    work per image depends on its data, so the mean, not the median, is the throughput)."""
    gaps = np.diff(last_output)
    return float(np.mean(gaps[len(gaps) // 2:])) if len(gaps) else float("nan")


def gap_distribution(last_output: np.ndarray) -> dict[str, float] | None:
    """The gaps between images over the second half of the run: mean and percentiles."""
    gaps = np.diff(last_output)[max(len(last_output) - 1, 0) // 2:]
    if not len(gaps):
        return None
    return {"mean": float(gaps.mean()), **{f"p{q}": float(np.percentile(gaps, q)) for q in (1, 50, 99)},
            "min": int(gaps.min()), "max": int(gaps.max())}


def images_for_steady_state(graph: QGraph) -> int:
    """Images a run needs for steady_state_cycles to measure a full pipeline: the second half of its gaps must
    come after the first image that entered a full pipeline. A dense layer holds about three images at once, one
    in its queues and the bank its PEs fill, one in the bank it drains and one in its output queues
    (hw/event_dense.py), and the image one layer sends is the one the next takes in, so L dense layers hold
    2L + 1 images; the second half of N - 1 gaps starts after that many when N >= 2 (2L + 1) - 1."""
    in_flight = 2 * sum(isinstance(node, QDense) for node in graph.nodes) + 1
    return 2 * in_flight - 1


def simulate(graph: QGraph, predicted_cycles: int, x: np.ndarray, directory: Path | None = None,
             wave: Path | None = None, progress=lambda step: None, family: str | None = None) -> Simulation:
    """Stream x (inputs as the ONNX model takes them) through the accelerator built for `family`, the design
    synthesis reads plus its event counters, weight loading included; compare with golden.

    The Verilog goes into the build dir `directory` (a temporary folder without one); the simulator
    build into the shared cache.
    """
    last = graph.nodes[-1]
    shape = code_shape(graph.quant[graph.output], getattr(last, "acc_bits", 0))
    if shape.width > 32:
        raise UndenseError(f"layer '{last.name}' outputs {shape.width}-bit values; the simulator streams at most 32")
    codes_in = golden.quantize_input(graph, x)
    expected = golden.run_codes(graph, codes_in)[graph.output]
    ports = event_ports(graph)
    with contextlib.ExitStack() as scratch:
        if directory is None:
            directory = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="undense-rtl-")))
        progress("writing Verilog")
        verilog = current_verilog(graph, directory, family=family)
        weights = weights_file(verilog)
        weights = b"" if weights is None else weights.read_bytes()
        flat = bulk.flatten(verilog, bulk.cache_root(), progress)
        binary = bulk.build(flat, bulk.cache_root(), list(ports), wave, weight_port=bool(weights),
                            progress=progress)
    images = len(codes_in)
    budget = int(BUDGET_FACTOR * predicted_cycles * (images + 2 * len(graph.nodes))) + len(weights) + 10_000
    progress(f"simulating {images} images" + (f" after loading {len(weights):,} bytes of weights" if weights else ""))
    if wave is not None:
        Path(wave).parent.mkdir(parents=True, exist_ok=True)  # the simulator writes the waveform as it runs
    run = bulk.run(binary, codes_in, expected.shape[1], shape.width, shape.signed, budget, wave, weights,
                   output_lanes(graph), code_shape(graph.quant[graph.input]).width)
    mismatches = run.outputs != expected
    measured: dict[str, dict[str, int]] = {}
    for port, count in run.events.items():
        layer, event = ports[port]
        measured.setdefault(layer, {})[event] = count
    predicted = activity.predicted_events(graph, codes_in)
    report = {
        "images": images,
        "mismatches": int(mismatches.sum()),
        "cycles": run.cycles,
        "cycles_per_image": steady_state_cycles(run.last_output) if images > 1 else float(run.cycles),
        "steady_state": images >= images_for_steady_state(graph),
        "images_needed_for_steady_state": images_for_steady_state(graph),
        "cycles_per_image_distribution": gap_distribution(run.last_output),
        "ideal_cycles_per_image": ideal_cycles_per_image(graph, predicted, images),
        "predicted_cycles_per_image": predicted_cycles,
        "predicted_cycles_per_image_p99": max(node.fold.cycles_p99 for node in graph.nodes),
        "first_image_latency_cycles": int(run.last_output[0] - run.first_input[0] + 1),
        "sim_cycles_per_second": run.cycles / run.wall_seconds,
        "sim_wall_seconds": run.wall_seconds,
        "events": measured,
        "events_predicted": predicted,
        "event_mismatches": [f"{layer}.{event}: simulated {count}, predicted {predicted[layer][event]}"
                             for layer, counts in measured.items() for event, count in counts.items()
                             if count != predicted[layer][event]],
        "events_total": {event: sum(counts.get(event, 0) for counts in measured.values())
                         for event in sorted({e for counts in measured.values() for e in counts})},
    }
    if report["mismatches"]:
        image, index = np.argwhere(mismatches)[0]
        report["first_mismatch"] = {"image": int(image), "output_index": int(index), "layer": last.name,
                                    "rtl": int(run.outputs[image, index]), "golden": int(expected[image, index])}
    return Simulation(run.outputs, expected, report)


def mismatch_error(report: dict) -> UndenseError:
    return UndenseError(f"the RTL differs from golden in {report['mismatches']} values, first at "
                        f"{report['first_mismatch']}: a hardware bug; please report it with the model")


def write_report(directory: Path, report: dict) -> Path:
    return builddir.write_report(directory, SIM_REPORT, report)
