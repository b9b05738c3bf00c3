"""A probe on every checkpoint of a run (tokenscope.train.probe_runs and `tokenscope scale`
on a run's or a ladder's folder): each point is that checkpoint's own score, placed at the
training tokens it had seen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tokenscope
from tokenscope.lm.fewshot import score_answer
from tokenscope.lm.scale import Probe
from tokenscope.train.probe_runs import training_curve
from tokenscope.train.runs import run_label, run_sizes

PROBE = Probe("The capital of Indonesia is", " Jakarta")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_run_is_measured_at_each_checkpoint(tmp_path):
    """A run's folder: its latest checkpoint on the size table, named by the run, and every
    checkpoint against the training tokens it had seen (from the command line too)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "c.txt").write_text("The capital of Indonesia is Jakarta.\n" * 400)
    config = {
        "data": [str(corpus)], "out_dir": str(tmp_path / "ladder" / "size-1"), "preset": "tiny",
        "tokenizer": "char", "steps": 6, "batch_size": 4, "context": 16, "warmup_steps": 1,
        "log_every": 1, "eval_every": 6, "eval_batches": 1, "sample_every": 100,
        "checkpoint_every": 2, "keep_checkpoints": 5, "threads": 1,
    }  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(config))
    train = [sys.executable, "-m", "tokenscope.train", "--config", str(tmp_path / "run.json")]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    run = tmp_path / "ladder" / "size-1"
    assert run_sizes(tmp_path / "ladder") == [run] and run_label(run) == "ladder/size-1"
    curve = training_curve(run, PROBE)
    assert [p.step for p in curve.points] == [2, 4, 6]
    assert [p.tokens for p in curve.points] == [2 * 4 * 16, 4 * 4 * 16, 6 * 4 * 16]
    for p in curve.points:
        model = tokenscope.load_model(str(run / "checkpoints" / f"step-{p.step:06d}"))
        assert p.probability == pytest.approx(
            score_answer(model, PROBE.prompt, PROBE.continuation).probability, rel=1e-6
        )
    from ..cli_run import run_cli

    proc = run_cli("scale", PROBE.prompt, PROBE.continuation, "-m", tmp_path / "ladder", "--json")
    out = json.loads(proc.stdout)
    assert [m["name"] for m in out["models"]] == ["ladder/size-1"]
    assert out["models"][0]["probability"] == pytest.approx(curve.points[-1].probability)
    assert [p["probability"] for p in out["runs"][0]["points"]] == pytest.approx(
        [p.probability for p in curve.points]
    )
