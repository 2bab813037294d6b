import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from undense.sim.runner import run_cocotb

HERE = Path(__file__).parent


@pytest.fixture
def run_stream_bench(tmp_path):
    """Emit `unit` as Verilog and run bench_stream on it: inputs in, golden's outputs expected."""

    def run(unit, name: str, inputs: np.ndarray, expected: np.ndarray, signed: bool, gap=0.3, stall=0.4,
            cycle_budget=200_000, lanes=1, bits=0):
        source = tmp_path / f"{name}.v"
        source.write_text(verilog.convert(unit, name=name, emit_src=False))
        case = tmp_path / "case.json"
        case.write_text(json.dumps({"inputs": inputs.reshape(-1).tolist(), "expected": expected.reshape(-1).tolist(),
                                    "signed": signed, "gap": gap, "stall": stall, "cycle_budget": cycle_budget,
                                    "lanes": lanes, "bits": bits, "per_image": int(expected.shape[-1]),
                                    "layer": name}))
        return run_cocotb([source], name, "bench_stream", HERE, tmp_path, tmp_path / "results.xml",
                          extra_env={"UNDENSE_CASE": str(case)})

    return run
