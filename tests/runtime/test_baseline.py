"""`undense baseline --measure`: the NVML measurement loop with a fake counter, the variants it measures, which
GPU NVML reads, shipped measurements, and the errors without a GPU. The PyTorch variants need a CUDA GPU: the
measurements shipped in sim/data/baselines/ are their run."""
import functools
import io
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from rich.console import Console

import undense
from undense.compiler import activity, builddir, golden
from undense.runtime import baseline, gpu_runtimes
from undense.runtime.power import power_report
from undense.runtime.synthetic import qdq_mlp
from undense.runtime.tables import print_power_report
from undense.sim.simulate import SIM_REPORT


class FakeCounter:
    """An energy counter that a batch of B images moves by 10 + B millijoules."""
    device, driver = "Fake GPU 80GB", "999.1"

    def __init__(self):
        self.total = 0

    def millijoules(self):
        return self.total


def test_measurement_loop_reads_the_counter_around_the_runs(tmp_path):
    counter, now = FakeCounter(), [0.0]

    def run(batch):
        counter.total += 10 + batch

    def clock():  # every reading is half a second later
        now[0] += 0.5
        return now[0]

    rows = baseline.measure_batches(run, counter, batches=(1, 4), seconds=2.0, clock=clock)
    assert [row["runs"] for row in rows] == [3, 3]  # loop checks at 0.5, 1.0, 1.5 s after the start
    assert rows[0]["j_per_image"] == pytest.approx(11e-3)
    assert rows[1]["j_per_image"] == pytest.approx(14e-3 / 4)
    assert rows[1]["seconds"] == pytest.approx(2.5)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    result = baseline.summary({"eager_fp32": rows}, counter.device, counter.driver, model, "fake", idle_w=40.0)
    assert result["best_batch"] == 4 and result["source"] == "measured" and result["idle_w"] == 40.0
    assert result["j_per_image_batch1"] == pytest.approx(11e-3)
    assert result["best_variant"] == result["batch1_variant"] == "eager_fp32"


def test_batches_grow_until_the_energy_per_image_stops_falling_or_they_do_not_fit():
    counter, now = FakeCounter(), [0.0]

    def clock():
        now[0] += 0.5
        return now[0]

    def flat_from_256(batch):  # 10 J a batch up to 256 images, then 40 mJ an image
        counter.total += 10_000 if batch <= 256 else 40 * batch

    rows = baseline.measure_batches(flat_from_256, counter, seconds=1.0, clock=clock)
    assert [row["batch"] for row in rows] == [1, 16, 256, 4096]  # 4096 saved nothing on 256, so 65536 is not tried

    def fits_up_to_16(batch):
        if batch > 16:
            raise baseline.BatchTooLarge(batch)
        counter.total += 10_000

    rows = baseline.measure_batches(fits_up_to_16, counter, seconds=1.0, clock=clock)
    assert [row["batch"] for row in rows] == [1, 16]


def rows(batch1: float, best: float) -> list[dict]:
    return [{"batch": 1, "j_per_image": batch1}, {"batch": 256, "j_per_image": best}]


def test_the_summary_is_the_gpu_at_its_best_and_keeps_every_variant(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    # the graph lowest at batch 1, the compiled fp16 at its best
    runs = {"cuda_graph_fp32": rows(30e-6, 2e-6), "compiled_fp16": rows(31e-6, 1e-6)}
    result = baseline.summary(runs, "NVIDIA H100 80GB HBM3", "999.1", model, "fake", idle_w=120.0)
    assert result["j_per_image_batch1"] == 30e-6 and result["batch1_variant"] == "cuda_graph_fp32"
    assert result["j_per_image_best"] == 1e-6 and result["best_variant"] == "compiled_fp16"
    assert result["best_batch"] == 256 and result["batches"] == runs["compiled_fp16"]
    assert result["variants"]["cuda_graph_fp32"] == {"j_per_image_batch1": 30e-6, "j_per_image_best": 2e-6,
                                                     "best_batch": 256, "batches": runs["cuda_graph_fp32"]}
    assert result["gpu"] == "NVIDIA H100 80GB HBM3"


def test_a_float_model_runs_as_given_and_in_fp16_on_onnxruntime(generator_path, monkeypatch):
    """Without a GPU: a fake runner records the models it is given, a fake counter and clock stand in for NVML."""
    counter, now, given = FakeCounter(), [0.0], []

    def runner(model: bytes):
        given.append(onnx.load_from_string(model))

        def run(batch):
            counter.total += 10 + batch
        return run, "CUDA provider, use_tf32=1"

    def clock():
        now[0] += 0.5
        return now[0]

    monkeypatch.setattr(baseline, "measure_batches", functools.partial(
        baseline.measure_batches, batches=(1, 4), seconds=1.0, clock=clock))
    monkeypatch.setattr(baseline, "idle_power", lambda counter, seconds: 42.0)
    monkeypatch.setitem(baseline.RUNTIMES, "onnxruntime", functools.partial(gpu_runtimes.onnxruntime_variants,
                                                                             runner=runner))
    result = baseline.measure(generator_path, counter, "onnxruntime")
    assert list(result["variants"]) == ["onnxruntime_fp32", "onnxruntime_fp16"]
    assert result["runtime"] == f"onnxruntime {onnxruntime.__version__} (CUDA provider, use_tf32=1)"
    assert result["idle_w"] == 42.0 and result["gpu"] == FakeCounter.device
    fp32, fp16 = given
    assert onnx.TensorProto.FLOAT16 not in {init.data_type for init in fp32.graph.initializer}
    assert {init.data_type for init in fp16.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the same latents feed both


def test_the_fp16_model_computes_what_the_fp32_model_does(generator_path):
    model = onnx.load(generator_path)
    latents = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)

    def outputs(serialized):
        session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: latents})[0]

    half = outputs(gpu_runtimes.fp16_model(model))
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, outputs(model.SerializeToString()), atol=5e-3)  # pixels in [0, 1]


def test_only_a_float_model_is_fp32(generator_path):
    assert gpu_runtimes.model_precision(onnx.load(generator_path)) == "fp32"
    assert gpu_runtimes.model_precision(qdq_mlp()) == "as given"


class FakeNvml:
    """Two GPUs, in NVML's order."""
    uuids = ["GPU-aaaa", "GPU-bbbb"]

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.uuids[index]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        assert uuid in self.uuids
        return uuid


@pytest.mark.parametrize("visible, handle", [(None, "GPU-aaaa"), ("", "GPU-aaaa"), ("1", "GPU-bbbb"),
                                             ("1,0", "GPU-bbbb"), ("GPU-bbbb,GPU-aaaa", "GPU-bbbb")])
def test_nvml_reads_the_gpu_cuda_runs_on(visible, handle):
    assert baseline.cuda_device_zero(FakeNvml(), visible) == handle


def test_idle_power_is_energy_over_time_with_nothing_running():
    counter, now = FakeCounter(), [0.0]

    def wait(seconds):  # 30 W for as long as it waits
        now[0] += seconds
        counter.total += int(30_000 * seconds)

    assert baseline.idle_power(counter, 2.0, clock=lambda: now[0], wait=wait) == pytest.approx(30.0)


def test_a_shipped_measurement_matches_gpu_and_model(tmp_path, monkeypatch):
    monkeypatch.setattr(baseline, "SHIPPED", tmp_path)
    (tmp_path / "fake.json").write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "model_sha256": "abc"}))
    assert baseline.shipped("H100", "abc")["file"] == "fake.json"
    assert baseline.shipped("H100", "other model") is None
    assert baseline.shipped("A100", "abc") is None


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_measure_without_a_gpu_says_what_is_missing(generator_path, tmp_path, runtime):
    done = subprocess.run([sys.executable, "-m", "undense", "baseline", "--measure", str(generator_path), "-o",
                           str(tmp_path / "b.json"), "--runtime", runtime], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and "CUDA" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "b.json").exists()


def test_power_sets_the_shipped_h200_measurement_beside_the_modelled_gpu(generator_path, tmp_path):
    """The bundled 8x8 generator was measured on an H200 (sim/data/baselines/h200-digits.json): `undense power`
    keeps the modelled H100 as its sentence and adds the H200's, and `--gpu 'H200 SXM'` takes the measurement."""
    compiled = undense.compile(generator_path, tmp_path / "build")
    cycles = compiled.report["predicted_cycles_per_image"]
    codes = golden.quantize_input(compiled.graph, np.random.default_rng(0).normal(size=(4, 16)))
    builddir.write_report(compiled.directory, SIM_REPORT, {
        "images": 4, "cycles_per_image": cycles, "first_image_latency_cycles": 5 * cycles,
        "events": activity.predicted_events(compiled.graph, codes)})
    shipped = json.loads((baseline.SHIPPED / "h200-digits.json").read_text())
    report = power_report(compiled)
    assert report["gpu"]["source"] == "model" and list(report["measured_gpus"]) == ["H200 SXM"]
    measured = report["measured_gpus"]["H200 SXM"]
    assert measured["gpu"]["source"] == "measured"
    assert measured["gpu"]["j_per_image_best"] == shipped["j_per_image_best"]
    assert measured["ratio_best"] == pytest.approx(shipped["j_per_image_best"] / report["fpga_j_per_image"])
    assert (f"on H200 SXM (measured, {shipped['best_variant'].rpartition('_')[0].replace('_', ' ')}, fp16) at batch "
            f"{shipped['best_batch']:,}") in measured["sentence"]
    direct = power_report(compiled, "H200 SXM")
    assert direct["gpu"] == measured["gpu"] and direct["sentence"] == measured["sentence"]
    assert direct["measured_gpus"] == {}
    shown = io.StringIO()
    print_power_report(direct, Console(file=shown, width=200))
    assert all(variant.rpartition("_")[0].replace("_", " ") in shown.getvalue() for variant in shipped["variants"])
