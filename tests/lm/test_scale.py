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


def _cache_files() -> list:
    return sorted(cache_dir().rglob("probe-*.json"))


@pytest.mark.parametrize(
    "content",
    [
        [1, 2, 3],  # a list where the entry is an object
        {"version": 1, "point": [0.5, 1]},
        {"version": 1, "point": "measured"},
        "[" * 100_000 + "]" * 100_000,  # RecursionError inside json.loads
    ],
    ids=["list", "point a list", "point a string", "deep nesting"],
)
def test_a_cache_entry_of_the_wrong_shape_is_measured_again(checkpoint, content):
    first = run_probe([str(checkpoint)], PROBE)[0]
    (path,) = _cache_files()
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    again = run_probe([str(checkpoint)], PROBE)[0]
    assert not again.cached and again.probability == first.probability
    assert run_probe([str(checkpoint)], PROBE)[0].cached  # the entry was written anew


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("probability", "0.5"),
        ("probability", float("nan")),
        ("probability", 7.0),
        ("parameters", -3),
        ("parameters", "many"),
        ("rank", 0),
        ("top_prediction", None),
        ("cached", "yes"),
        ("unknown_field", 1),
    ],
)
def test_a_cached_field_of_the_wrong_type_is_not_trusted(checkpoint, field, value):
    first = run_probe([str(checkpoint)], PROBE)[0]
    (path,) = _cache_files()
    data = json.loads(path.read_text())
    data["point"][field] = value
    path.write_text(json.dumps(data))  # (json writes NaN as the bare word NaN, as it reads it)
    again = run_probe([str(checkpoint)], PROBE)[0]
    assert not again.cached and again.probability == first.probability


def test_a_cached_sweep_with_a_bad_point_is_measured_again(checkpoint):
    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"),),
        query="Indonesia",
        expected="Jakarta",
        template="The capital of {input} is {output}.",
    )
    first = run_sweeps([str(checkpoint)], prompt)[0]
    (path,) = sorted(cache_dir().rglob("sweep-*.json"))
    for damage in ({"probability": float("inf")}, {"shots": "1"}, {"normalised": []}):
        data = json.loads(path.read_text())
        data["points"][0].update(damage)
        path.write_text(json.dumps(data))
        again = run_sweeps([str(checkpoint)], prompt)[0]
        assert not again.cached, damage
        assert [p.probability for p in again.points] == [p.probability for p in first.points]
    path.write_text(json.dumps({**json.loads(path.read_text()), "parameters": "12"}))
    assert not run_sweeps([str(checkpoint)], prompt)[0].cached


def test_a_folder_in_place_of_a_cache_file_is_measured_around(checkpoint):
    run_probe([str(checkpoint)], PROBE)
    (path,) = _cache_files()
    path.unlink()
    path.mkdir()
    again = run_probe([str(checkpoint)], PROBE)[0]
    assert not again.cached and path.is_dir()  # measured; the folder is not the cache's to remove


def test_tokenscope_scale_does_not_hang_on_a_fifo_or_dev_zero_in_its_cache(
    tmp_path, checkpoint, other_checkpoint
):
    """A real process, as a person meets it: a FIFO in place of a cache file used to block
    `tokenscope scale` forever (open() waits for a writer), and /dev/zero never ends."""
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cli-cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tokenscope", "scale", PROBE.prompt, PROBE.continuation,
               "-m", str(checkpoint), "-m", str(other_checkpoint), "--json"]  # fmt: skip
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    files = sorted((tmp_path / "cli-cache").rglob("probe-*.json"))
    assert len(files) == 2
    files[0].unlink()
    os.mkfifo(files[0])
    files[1].unlink()
    files[1].symlink_to("/dev/zero")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [m["cached"] for m in json.loads(again.stdout)["models"]] == [False, False]
    assert json.loads(again.stdout)["models"] == [
        {**m, "cached": False} for m in json.loads(first.stdout)["models"]
    ]
