"""One probe across several models (tokenscope.lm.scale and `tokenscope scale`): each model's
number is what scoring the answer on that model gives, results are cached per model and
probe, and a model changed on disk is measured again."""

from __future__ import annotations

import json
import os

import pytest

import tokenscope
from tokenscope.lm.fewshot import Example, FewShotPrompt, score_answer, sweep
from tokenscope.lm.scale import Probe, cache_dir, run_probe, run_sweeps

PROBE = Probe("The capital of Indonesia is", " Jakarta")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_each_point_is_that_models_score_and_is_cached(checkpoint, other_checkpoint):
    targets = [str(checkpoint), str(other_checkpoint)]
    points = run_probe(targets, PROBE)
    for target, point in zip(targets, points, strict=True):
        model = tokenscope.load_model(target)
        score = score_answer(model, PROBE.prompt, PROBE.continuation)
        assert point.probability == pytest.approx(score.probability, rel=1e-6)
        assert point.rank == score.first_token_rank and point.parameters == model.parameter_count
        assert not point.cached
    again = run_probe(targets, PROBE)
    assert all(p.cached for p in again)
    assert [p.probability for p in again] == [p.probability for p in points]
    # A model changed on disk (retrained) is measured again; a damaged cache file too.
    weights = next(p for p in checkpoint.rglob("*") if p.is_file() and p.suffix != ".json")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert not run_probe([str(checkpoint)], PROBE)[0].cached
    for path in cache_dir().rglob("probe-*.json"):
        path.write_text("{ not json", encoding="utf-8")
    assert not run_probe([str(other_checkpoint)], PROBE)[0].cached


def test_sweeps_for_every_model_are_the_models_own_sweeps(checkpoint, other_checkpoint):
    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"), Example("Japan", "Tokyo")),
        query="Indonesia",
        expected="Jakarta",
        template="The capital of {input} is {output}.",
    )
    targets = [str(checkpoint), str(other_checkpoint)]
    sweeps = run_sweeps(targets, prompt)
    for target, s in zip(targets, sweeps, strict=True):
        mine = sweep(tokenscope.load_model(target), prompt)
        assert [p.probability for p in s.points] == pytest.approx([p.probability for p in mine])
    assert all(s.cached for s in run_sweeps(targets, prompt))
    with pytest.raises(ValueError, match="answer is empty"):
        Probe("x", "")


def test_the_command_line_gives_the_apis_numbers(checkpoint, other_checkpoint, tmp_path):
    from ..cli_run import run_cli

    models = ["-m", checkpoint, "-m", other_checkpoint]
    proc = run_cli("scale", PROBE.prompt, PROBE.continuation, *models, "--json",
                   env={"XDG_CACHE_HOME": str(tmp_path / "cli-cache")})  # fmt: skip
    out = json.loads(proc.stdout)["models"]
    mine = {p.model: p for p in run_probe([str(checkpoint), str(other_checkpoint)], PROBE)}
    for row in out:
        assert row["probability"] == pytest.approx(mine[row["model"]].probability, rel=1e-6)
    assert [r["parameters"] for r in out] == sorted(r["parameters"] for r in out)


def test_the_bundled_model_is_keyed_by_its_files():
    """A new version that retrains the bundled model must not answer from the old one's
    cache: its key is its folder's files, as for any model on disk."""
    from tokenscope.lm.loading import builtin_model_path
    from tokenscope.lm.scale import model_key

    assert model_key("builtin") == model_key(str(builtin_model_path()))
