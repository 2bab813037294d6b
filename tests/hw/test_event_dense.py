"""Dense layers on grids of processing elements, on Verilator: bit-exact against golden, and every event
counter equal to what the units' descriptions predict from golden's values."""
import numpy as np
import pytest

import undense
from undense.compiler.passes.fold import fold
from undense.compiler.targets import target
from undense.runtime.synthetic import mlp
from undense.sim.simulate import simulate


@pytest.mark.parametrize("activations,bits,groups,seed", [
    (["Relu", "Relu"], 8, {"layer0": 3, "layer1": 2}, 0),     # sparse edge on three lanes, two output lanes
    (["Sigmoid", None], 6, {"layer0": 1, "layer1": 4}, 1),    # dense edge (a table without its zero), one lane
    ([None, "Relu"], 4, {"layer0": 5, "layer1": 1}, 2),       # narrow codes, five lanes into one group
])
def test_layers_on_a_grid_match_golden(tmp_path, activations, bits, groups, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 12)).astype(np.float32)
    compiled = undense.compile(mlp([12, 20, 10], activations, density=0.3, seed=seed), calibration=x, bits=bits)
    graph = fold(compiled.graph, target("ecp5-85k"), samples=x, groups=groups)
    assert [node.fold.groups for node in graph.nodes] == list(groups.values())
    run = simulate(graph, max(node.fold.cycles for node in graph.nodes), x[:20], tmp_path, family="ecp5")
    assert run.report["mismatches"] == 0
    assert run.report["event_mismatches"] == []
    events = run.report["events"]["layer1"]
    assert events["event_reads"] == events["stream_in"] * groups["layer1"]
    if activations[0] == "Relu":  # zeros stay home
        assert events["stream_in"] < 20 * 20
