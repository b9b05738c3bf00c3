"""`tokenscope lens`, `attention` and `surprisal` give the Python API's numbers (--json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tokenscope
from tokenscope.lm.inside import attention, compare, induction_scores, logit_lens, surprisal

from .cli_run import run_cli

PROMPT = "The capital of Indonesia is"


def _run(*args: str) -> dict:
    return json.loads(run_cli(*args, "--json").stdout)


def test_lens_on_the_command_line_is_the_api(checkpoint):
    out = _run("lens", PROMPT, "-m", str(checkpoint), "--top", "5")
    lens = logit_lens(tokenscope.load_model(str(checkpoint)), PROMPT, top_k=5)
    assert out["target"] == lens.target and out["first_top_layer"] == lens.first_top_layer
    for row, mine in zip(out["layers"], lens.rows, strict=True):
        assert [t["token_id"] for t in row["top"]] == [i for i, _l, _p in mine.top]
        assert row["target_probability"] == pytest.approx(mine.target_probability, rel=1e-5)
    ablated = _run("lens", PROMPT, "-m", str(checkpoint), "--ablate", "1.0,1.1")
    assert ablated["layers"][-1]["target_probability"] != pytest.approx(
        out["layers"][-1]["target_probability"]
    )


def test_attention_and_induction_on_the_command_line_are_the_api(checkpoint):
    model = tokenscope.load_model(str(checkpoint))
    out = _run("attention", PROMPT, "-m", str(checkpoint), "--layer", "1", "--head", "0")
    maps = attention(model, PROMPT)
    assert np.allclose(np.array(out["weights"]), maps.weights[1, 0], atol=1e-6)
    averaged = _run("attention", PROMPT, "-m", str(checkpoint), "--layer", "0")
    assert np.allclose(np.array(averaged["weights"]), maps.averaged(0), atol=1e-6)
    scores = _run("attention", "-m", str(checkpoint), "--induction")["induction_scores"]
    assert np.allclose(np.array(scores), induction_scores(model), atol=1e-6)


def test_surprisal_on_the_command_line_is_the_api(checkpoint, other_checkpoint, tmp_path):
    text = "The capital of Indonesia is Jakarta. The capital of France is Paris."
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    out = _run("surprisal", str(path), "-m", str(checkpoint), "-m", str(other_checkpoint))
    a = surprisal(tokenscope.load_model(str(checkpoint)), text)
    b = surprisal(tokenscope.load_model(str(other_checkpoint)), text)
    assert out["models"][0]["bits_per_byte"] == pytest.approx(a.bits_per_byte, rel=1e-5)
    assert [t["bits"] for t in out["models"][1]["tokens"]] == pytest.approx(
        [t.bits for t in b.tokens], rel=1e-5, nan_ok=True
    )
    top = compare(a, b).largest(10)
    assert [(d["start"], d["end"]) for d in out["disagreements"]] == [(s, e) for s, e, *_ in top]
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    proc = run_cli("surprisal", str(empty), ok=False)
    assert proc.returncode == 2 and "has no text to score" in proc.stderr


def test_icl_on_the_command_line_is_the_api(checkpoint, tmp_path):
    from tokenscope.lm import icl

    text = "The capital of Indonesia is Jakarta. The capital of France is Paris. " * 20
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    out = _run("icl", "-m", str(checkpoint), "--text", str(path), "--windows", "3")
    mine = icl.report(tokenscope.load_model(str(checkpoint)), text, count=3)
    assert out["icl_score"] == pytest.approx(mine.icl_score, rel=1e-5)
    assert out["icl_score_without_strongest"] == pytest.approx(mine.icl_without_strongest, rel=1e-5)
    assert out["strongest_induction_head"] == list(mine.strongest_head)
    assert np.allclose(out["previous_token_scores"], mine.heads.previous_token, atol=1e-6)
    default = _run("icl", "-m", str(checkpoint))  # the bundled Shakespeare sample
    assert default["text"].startswith("the bundled Shakespeare sample") and default["windows"] == 32
    induction = _run("icl", "-m", str(checkpoint), "--text", "induction")
    assert induction["text"] == "held-out text of the induction corpus"
    assert induction["icl_score"] != pytest.approx(default["icl_score"])
    short = run_cli("icl", "-m", str(checkpoint), "--text", "-", stdin="a b c", ok=False)
    assert short.returncode != 0 and "too short" in short.stderr


def test_a_fewshot_sweep_without_a_head_is_the_api_under_that_ablation(checkpoint):
    """The causal test for few-shot prompting: `tokenscope fewshot --sweep --ablate L.H`."""
    from tokenscope.lm.fewshot import load_prompt, sweep
    from tokenscope.lm.inside import ablated

    args = ("fewshot", "capitals", "--sweep", "-k", "2", "-m", str(checkpoint))
    plain = _run(*args)
    silenced = _run(*args, "--ablate", "1.0,1.1")
    model = tokenscope.load_model(str(checkpoint))
    prompt = load_prompt("capitals")
    with ablated(model, {(1, 0), (1, 1)}):
        mine = sweep(model, prompt, max_shots=2)
    got = [p["probability"] for p in silenced["points"]]
    assert got == pytest.approx([p.probability for p in mine], rel=1e-5)
    assert got != pytest.approx([p["probability"] for p in plain["points"]], rel=1e-3)
