"""Few-shot prompts: assembly, scoring against direct forward passes, sweeps, files, the CLI."""

import json
import math

import pytest
import torch

from tokenscope.lm.fewshot import (
    Example,
    FewShotPrompt,
    iter_sweep,
    list_presets,
    load_prompt,
    preset_path,
    reorder,
    score_answer,
    score_candidates,
    sweep,
    sweep_size,
)

SEED_TEXT = (
    "Translate English to Indonesian:\nsea otter => berang-berang laut\ncheese => keju\n"
    "plush toy => boneka\nTranslate English to Indonesian:\ncloud =>"
)


@pytest.fixture(scope="module")
def long_model(make_model):
    """A tiny model whose window holds every preset, so nothing is dropped."""
    return make_model("tiny", seed=1, context_length=512)


def direct_probabilities(model, context: str, continuation: str) -> list[float]:
    """P of each continuation token from one full forward pass, no cache, no engine helpers."""
    ctx = model.encode(context)
    cont = model.encode(continuation)
    with torch.no_grad():
        logits = model.transformer(torch.tensor([ctx + cont]))[0].float()
    probs = torch.softmax(logits, dim=-1)
    return [float(probs[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)]


# ----- assembly ----------------------------------------------------------------------------


def test_the_seed_preset_assembles_exactly():
    prompt = load_prompt("english-indonesian")
    assert [e.input for e in prompt.examples[:3]] == ["sea otter", "cheese", "plush toy"]
    assert len(prompt.examples) > 3 and prompt.expected == "awan"
    assert prompt.with_shots(3).assemble().text == SEED_TEXT
    assert prompt.answer_text("awan") == " awan"


def test_presets_are_listed_and_load():
    assert {"english-indonesian", "capitals", "sentiment"} <= set(list_presets())
    for name in list_presets():
        prompt = FewShotPrompt.load(preset_path(name))
        assert prompt.expected and prompt.examples and prompt.query
    sentiment = load_prompt("sentiment")
    assert set(sentiment.candidates) == {"positive", "negative"}
    assert sentiment.expected in sentiment.candidates
    with pytest.raises(ValueError, match="capitals"):
        preset_path("no-such-preset")


def test_parts_cover_their_text_and_tokens(bpe_tokenizer):
    prompt = load_prompt("english-indonesian").with_shots(3)
    assembled = prompt.assemble(bpe_tokenizer)
    kinds = [(p.kind, p.index) for p in assembled.parts]
    assert kinds == [
        ("instruction", 0),
        ("example", 0),
        ("example", 1),
        ("example", 2),
        ("header", 0),
        ("query", 0),
    ]
    texts = [assembled.text[p.start : p.end] for p in assembled.parts]
    assert texts == [
        "Translate English to Indonesian:",
        "sea otter => berang-berang laut",
        "cheese => keju",
        "plush toy => boneka",
        "Translate English to Indonesian:",
        "cloud =>",
    ]
    offsets = bpe_tokenizer.encode_with_offsets(assembled.text)
    assert assembled.token_count == len(offsets)
    assert [i for i, _, _ in offsets] == bpe_tokenizer.encode(assembled.text)
    for part in assembled.parts:
        inside = range(part.token_start, part.token_end)
        assert len(inside) > 0
        for n, (_, s, e) in enumerate(offsets):
            overlaps = s < part.end and e > part.start
            assert overlaps == (n in inside), (part, n, s, e)
    # Without a tokenizer: the same characters, no tokens.
    plain = prompt.assemble()
    assert plain.text == assembled.text and plain.token_count is None
    assert [(p.start, p.end) for p in plain.parts] == [(p.start, p.end) for p in assembled.parts]
    assert all(p.token_start is None and p.token_end is None for p in plain.parts)


def test_template_whitespace_moves_to_the_answer():
    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"),),
        query="Indonesia",
        template="The capital of {input} is {output}.",
        separator=" ",
    )
    assert prompt.assemble().text == "The capital of France is Paris. The capital of Indonesia is"
    assert prompt.answer_text("Jakarta") == " Jakarta"
    zero = prompt.with_shots(0).assemble()
    assert zero.text == "The capital of Indonesia is"
    assert [p.kind for p in zero.parts] == ["query"]
    # Braces in user text are text, never format fields.
    odd = FewShotPrompt(examples=(Example("{output}", "{x}"),), query="{input}")
    assert odd.assemble().text == "{output} => {x}\n{input} =>"


@pytest.mark.parametrize(
    "template", ["{input} only", "only {output}", "{output} <= {input}", "{input}{output}{output}"]
)
def test_bad_templates_are_refused(template):
    with pytest.raises(ValueError, match="template"):
        FewShotPrompt(template=template)


# ----- files -------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    prompt = load_prompt("sentiment")
    assert FewShotPrompt.from_dict(json.loads(json.dumps(prompt.to_dict()))) == prompt
    path = prompt.with_shots(2).save(tmp_path / "mine.json")
    assert FewShotPrompt.load(path) == prompt.with_shots(2)
    assert load_prompt(str(path)) == prompt.with_shots(2)


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'exmaples'"):
        FewShotPrompt.from_dict({"exmaples": []})
    with pytest.raises(ValueError, match="template"):
        FewShotPrompt.from_dict({"template": "{input} -> answer"})
    with pytest.raises(ValueError, match="example 0"):
        FewShotPrompt.from_dict({"examples": [["a", "b"]]})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json"):
        FewShotPrompt.load(bad)
    with pytest.raises(ValueError, match=r"missing\.json"):
        FewShotPrompt.load(tmp_path / "missing.json")
    typo = tmp_path / "typo.json"
    typo.write_text('{"quey": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"typo\.json.*'quey'"):
        FewShotPrompt.load(typo)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("fifo", "named pipe"),
        ("folder", "a folder"),
        ("dev-zero", "character device"),
        ("deep", "nested too deeply"),
        ("nested 100", "more than 64 levels"),
    ],
)
def test_a_prompt_file_that_is_no_file_or_nests_deeply_is_one_clear_error(tmp_path, kind, said):
    from ..special_files import call_unblocked, replace_with

    path = tmp_path / "prompt.json"
    if kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "nested 100":
        path.write_text('{"query": ' + "[" * 100 + "]" * 100 + "}")
    else:
        replace_with(path, kind)
    with pytest.raises(ValueError) as caught:
        call_unblocked(lambda: FewShotPrompt.load(path), path if kind == "fifo" else None)
    message = str(caught.value)
    assert said in message and str(path) in message and "\n" not in message


# ----- scoring -----------------------------------------------------------------------------


def test_score_answer_equals_a_direct_computation(long_model):
    prompt = load_prompt("english-indonesian")
    score = score_answer(long_model, prompt, "awan")
    text = prompt.assemble().text
    expected = direct_probabilities(long_model, text, " awan")
    assert score.continuation == " awan" and score.dropped_tokens == 0
    assert len(score.token_probabilities) == len(long_model.encode(" awan")) > 1
    assert list(score.token_probabilities) == pytest.approx(expected, rel=1e-4)
    assert score.probability == pytest.approx(math.prod(expected), rel=1e-4)
    assert score.logprob == pytest.approx(math.log(math.prod(expected)), abs=1e-4)

    ctx = long_model.encode(text)
    with torch.no_grad():
        next_probs = torch.softmax(long_model.transformer(torch.tensor([ctx]))[0, -1], dim=-1)
    first = long_model.encode(" awan")[0]
    assert score.first_token_rank == 1 + int((next_probs > next_probs[first]).sum())
    assert score.top_probability == pytest.approx(float(next_probs.max()), rel=1e-4)
    assert score.top_prediction == long_model.tokenizer.token_text(int(next_probs.argmax()))


def test_a_prompt_longer_than_the_window_keeps_its_latest_tokens(tiny_model):
    prompt = load_prompt("english-indonesian")
    window = tiny_model.config.context_length
    text = prompt.assemble().text
    n_prompt, n_answer = len(tiny_model.encode(text)), len(tiny_model.encode(" awan"))
    assert n_prompt > window  # the tiny model's window is small on purpose
    score = score_answer(tiny_model, prompt, "awan")
    assert score.dropped_tokens == n_prompt + n_answer - 1 - window
    kept = tiny_model.encode(text)[score.dropped_tokens :]
    cont = tiny_model.encode(" awan")
    with torch.no_grad():
        logits = tiny_model.transformer(torch.tensor([kept + cont[:-1]]))[0]
    probs = torch.softmax(logits[len(kept) - 1 :], dim=-1)
    expected = [float(probs[i, t]) for i, t in enumerate(cont)]
    assert list(score.token_probabilities) == pytest.approx(expected, rel=1e-4)


def test_score_candidates_normalises_and_keeps_the_order(long_model):
    prompt = load_prompt("sentiment")
    labels = [*prompt.candidates, "neutral", "awful"]
    results = score_candidates(long_model, prompt, labels)
    assert [c for c, _, _ in results] == labels
    raw = [p for _, p, _ in results]
    shares = [n for _, _, n in results]
    assert sum(shares) == pytest.approx(1.0)
    assert sorted(range(len(raw)), key=raw.__getitem__) == sorted(
        range(len(shares)), key=shares.__getitem__
    )
    for (label, p, _), share in zip(results, shares, strict=True):
        assert p == pytest.approx(score_answer(long_model, prompt, label).probability, rel=1e-6)
        assert share == pytest.approx(p / sum(raw), rel=1e-6)


# ----- sweeps ------------------------------------------------------------------------------


def test_sweep_shape_order_and_given_order(long_model):
    prompt = load_prompt("english-indonesian")
    points = sweep(long_model, prompt, max_shots=3, orders=2, seed=7)
    assert sweep_size(prompt, max_shots=3, orders=2) == len(points) == 2 * 4
    assert [(p.order, p.shots) for p in points] == [(o, s) for o in range(2) for s in range(4)]
    for p in points[:4]:  # order 0: the examples as given
        direct = score_answer(long_model, prompt.with_shots(p.shots), "awan")
        assert p.probability == pytest.approx(direct.probability, rel=1e-5)
        assert p.rank == direct.first_token_rank
        assert p.top_prediction == direct.top_prediction
        assert p.normalised is None
    shuffled = reorder(prompt, 1, seed=7)
    assert shuffled.examples != prompt.examples
    assert sorted(shuffled.examples, key=repr) == sorted(prompt.examples, key=repr)
    for p in points[4:]:
        direct = score_answer(long_model, shuffled.with_shots(p.shots), "awan")
        assert p.probability == pytest.approx(direct.probability, rel=1e-5)
    assert points[0].probability == pytest.approx(points[4].probability, rel=1e-5)  # zero-shot


def test_sweep_orders_are_reproducible_and_seeded():
    prompt = load_prompt("english-indonesian")
    assert reorder(prompt, 0, seed=3) == prompt
    assert reorder(prompt, 2, seed=3) == reorder(prompt, 2, seed=3)
    seeds = {reorder(prompt, 1, seed=s).examples for s in range(5)}
    assert len(seeds) > 1


def test_sweep_with_the_same_seed_gives_the_same_points(tiny_model):
    prompt = load_prompt("capitals")
    first = sweep(tiny_model, prompt, max_shots=2, orders=3, seed=5)
    second = sweep(tiny_model, prompt, max_shots=2, orders=3, seed=5)
    assert [(p.order, p.shots) for p in first] == [(p.order, p.shots) for p in second]
    assert [p.probability for p in first] == pytest.approx([p.probability for p in second])


def test_sweep_normalises_over_candidates(long_model):
    prompt = load_prompt("sentiment")
    points = sweep(long_model, prompt, max_shots=2)
    for p in points:
        results = dict(
            (c, n)
            for c, _, n in score_candidates(
                long_model, prompt.with_shots(p.shots), prompt.candidates
            )
        )
        assert p.normalised == pytest.approx(results[prompt.expected], rel=1e-5)


def test_a_sweep_is_computed_one_point_at_a_time_and_stops_when_closed(tiny_model, monkeypatch):
    prompt = load_prompt("english-indonesian")
    scored = []
    original = tiny_model.score_continuation
    monkeypatch.setattr(
        tiny_model, "score_continuation", lambda *a, **k: scored.append(a) or original(*a, **k)
    )
    points = iter_sweep(tiny_model, prompt, orders=2)
    first = [next(points) for _ in range(3)]
    points.close()
    assert [p.shots for p in first] == [0, 1, 2]
    assert len(scored) == 3  # nothing computed ahead of what was asked for


def test_sweep_refuses_what_it_cannot_do(tiny_model):
    prompt = load_prompt("english-indonesian")
    with pytest.raises(ValueError, match="expected"):
        sweep(tiny_model, FewShotPrompt(examples=prompt.examples, query="cloud"))
    with pytest.raises(ValueError, match="max_shots"):
        sweep(tiny_model, prompt, max_shots=len(prompt.examples) + 1)


# ----- the command line --------------------------------------------------------------------


def run_cli(*args):
    from ..cli_run import run_cli as run

    return run("fewshot", *args, ok=False)


def test_cli_sweep_json_matches_the_engine(checkpoint):
    from tokenscope.lm.loading import load_model

    proc = run_cli("english-indonesian", "--model", checkpoint, "--sweep", "--json", "--orders", 2)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    prompt = load_prompt("english-indonesian")
    expected = sweep(load_model(str(checkpoint)), prompt, orders=2)
    assert len(out["points"]) == 2 * (len(prompt.examples) + 1) == len(expected)
    for got, want in zip(out["points"], expected, strict=True):
        assert (got["order"], got["shots"]) == (want.order, want.shots)
        assert got["probability"] == pytest.approx(want.probability, rel=1e-5)
        assert got["rank"] == want.rank and got["top_prediction"] == want.top_prediction


def test_cli_prints_the_prompt_and_the_candidates(checkpoint):
    proc = run_cli("sentiment", "--model", checkpoint, "--max-shots", 1)
    assert proc.returncode == 0, proc.stderr
    assert "Review: The pasta was fresh" in proc.stdout
    assert "We waited an hour" not in proc.stdout
    assert "expected ' negative'" in proc.stdout
    assert "candidate 'positive'" in proc.stdout


def test_cli_reports_a_bad_preset_file(tmp_path, checkpoint):
    bad = tmp_path / "broken.json"
    bad.write_text("[1, 2", encoding="utf-8")
    proc = run_cli(bad, "--model", checkpoint)
    assert proc.returncode == 2
    assert "broken.json" in proc.stderr and "Traceback" not in proc.stderr
