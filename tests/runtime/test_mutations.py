"""The mutation fuzz (runtime/mutations.py): damaged copies of the project's own models, through the real CLI.

Every mutant ends in exit 0 (and then `undense run` works) or exit 2 with one `Error:` line and nothing
written; `make bench` runs 1,000 (bench.json, "mutations")."""
from pathlib import Path

import pytest

from undense.runtime import mutations
from undense.runtime.mutations import KINDS, mutant, run_mutant, summary

REPO = Path(__file__).resolve().parents[2]
SEEDS = range(50)  # KINDS in turn: every kind three times or more


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"{seed}-{KINDS[seed % len(KINDS)]}")
def test_mutant_compiles_and_runs_or_is_refused_in_one_line(seed):
    outcome = run_mutant(seed, REPO)
    assert outcome.outcome in ("exit_0", "exit_2"), (
        f"seed {seed} ({outcome.kind} of {outcome.source}: {outcome.detail}): {outcome.message}")


def test_every_source_and_kind_is_there():
    assert {s.name for s in mutations.sources(REPO)} == {s.name for s in mutations.SOURCES}
    assert {mutant(seed, REPO).kind for seed in SEEDS} == set(KINDS)


def test_a_mutant_is_the_same_for_the_same_seed():
    assert mutant(7, REPO) == mutant(7, REPO)
    assert mutant(7, REPO).data != mutant(7 + len(KINDS), REPO).data


def test_external_data_travels_with_the_bytes_of_a_file_that_refers_to_it():
    seed = next(s for s in range(200) if mutant(s, REPO).source == "dynamo_external"
                and mutant(s, REPO).kind == "flip_bytes")
    assert set(mutant(seed, REPO).beside) == {"dynamo_external.onnx.data"}


def test_a_bug_is_a_failure(monkeypatch, tmp_path):
    """The fuzz can fail: an exception in the compiler is exit 3, recorded with its seed and kind."""
    import tempfile

    from undense.compiler import pipeline

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the traceback files go

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "quantize", broken)
    seed = next(s for s in SEEDS if run_mutant(s, REPO).exit_code == 3)
    outcome = run_mutant(seed, REPO)
    assert outcome.outcome == "failure"
    assert "internal error in compile (quantize): RuntimeError: boom" in outcome.message
    figures = summary([outcome], 1.0)
    assert figures["failures"] == 1 and figures["failed"][0]["seed"] == seed
    assert figures["by_kind"][outcome.kind]["failures"] == 1
