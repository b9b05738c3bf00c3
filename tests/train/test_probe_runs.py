"""A probe on every checkpoint of a run (tokenscope.train.probe_runs and `tokenscope scale`
on a run's or a ladder's folder): each point is that checkpoint's own score, placed at the
training tokens it had seen."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
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


def test_a_run_on_the_induction_corpus_reports_icl_at_each_eval_and_checkpoint(tmp_path):
    """The trainer's eval events carry the ICL score and every head's induction and
    previous-token score; `tokenscope scale --icl` gives each checkpoint's own report."""
    from tokenscope.lm import icl
    from tokenscope.train.events import EvalEvent, read_events

    config = {
        "data": [], "corpus_recipe": "induction", "out_dir": str(tmp_path / "run"),
        "preset": "tiny", "tokenizer": "char", "model": {"n_layer": 2, "n_head": 2},
        "steps": 4, "batch_size": 4, "context": 24, "warmup_steps": 1, "log_every": 1,
        "eval_every": 2, "eval_batches": 1, "sample_every": 100, "checkpoint_every": 2,
        "keep_checkpoints": 5, "threads": 1,
    }  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(config))
    train = [sys.executable, "-m", "tokenscope.train", "--config", str(tmp_path / "run.json")]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    run = tmp_path / "run"
    evals = [e for e in read_events(run / "events.jsonl") if isinstance(e, EvalEvent)]
    assert [e.step for e in evals] == [2, 4]
    for e in evals:
        assert e.icl_score is not None and abs(e.icl_score) < 5
        assert len(e.induction_scores) == 2 and all(len(r) == 2 for r in e.induction_scores)
        assert e.induction_max == pytest.approx(max(max(r) for r in e.induction_scores), abs=1e-4)
        assert e.previous_token_max == pytest.approx(
            max(max(r) for r in e.previous_token_scores), abs=1e-4
        )
    last = tokenscope.load_model(str(run / "checkpoints" / "step-000004"))
    heads = icl.head_scores(last.transformer, icl.token_pool(last.tokenizer, 70))
    assert np.allclose(heads.induction, evals[-1].induction_scores, atol=1e-4)
    from ..cli_run import run_cli

    text = tmp_path / "text.txt"
    text.write_text("abcdefghij klmnop abcdefghij klmnop\n" * 30)
    out = json.loads(run_cli("scale", "--icl", "--text", text, "-m", run, "--json").stdout)
    (row,) = out["models"]
    assert row["name"] == "run" and [p["step"] for p in row["checkpoints"]] == [2, 4]
    for p in row["checkpoints"]:
        model = tokenscope.load_model(str(run / "checkpoints" / f"step-{p['step']:06d}"))
        mine = icl.report(model, text.read_text())
        assert p["icl_score"] == pytest.approx(mine.icl_score, rel=1e-5)
        assert p["induction_max"] == pytest.approx(mine.heads.induction_max, rel=1e-5)
    assert row["icl_score"] == pytest.approx(row["checkpoints"][-1]["icl_score"])
    refused = run_cli("scale", "--icl", "The", "x", ok=False)
    assert refused.returncode != 0 and "--icl measures on --text" in refused.stderr
