"""Token-by-token generation: step records, reproducibility, stopping, the context window."""

import dataclasses

import pytest
import torch

from tokenscope.lm import GREEDY, SamplingSettings


def _greedy_reference(model, ids, n):
    """Greedy decoding by full recomputation at every step (no cache)."""
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            token = int(model.transformer(torch.tensor([ids]))[0, -1].argmax())
            out.append(token)
            ids.append(token)
    return out


def test_greedy_generation_matches_recomputation(make_model):
    model = make_model("tiny-llama")
    prompt = model.encode("The capital of")
    steps = list(model.generate(prompt, max_tokens=12, sampling=GREEDY))
    assert [s.token_id for s in steps] == _greedy_reference(model, prompt, 12)


def test_step_records_carry_the_distribution_they_came_from(tiny_model):
    settings = SamplingSettings(temperature=0.8, top_k=5, seed=7)
    gen = tiny_model.generate("The capital", max_tokens=6, sampling=settings, top_k=8)
    context = tiny_model.encode("The capital")
    for step in gen:
        raw = torch.softmax(tiny_model.transformer(torch.tensor([context]))[0, -1].detach(), -1)
        assert step.probability == pytest.approx(float(raw[step.token_id]), rel=1e-4)
        assert len(step.top_raw) == 8 and len(step.top_sampled) == 5
        assert [a.probability for a in step.top_raw] == sorted(
            (a.probability for a in step.top_raw), reverse=True
        )
        assert step.top_raw[0].probability == pytest.approx(float(raw.max()), rel=1e-4)
        assert step.token_id in {a.token_id for a in step.top_sampled}
        assert sum(a.sampled_probability for a in step.top_sampled) == pytest.approx(1, abs=1e-5)
        assert step.entropy == pytest.approx(float(-(raw * raw.log2()).sum()), rel=1e-3)
        assert step.display == tiny_model.tokenizer.display(step.token_id)
        assert step.elapsed > 0
        context.append(step.token_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.token_id = 0


def test_seeded_sampling_is_reproducible(tiny_model):
    def run(seed):
        return [
            s.token_id
            for s in tiny_model.generate("The", max_tokens=15, sampling=SamplingSettings(seed=seed))
        ]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_text_is_assembled_from_whole_characters(tiny_model):
    gen = tiny_model.generate("语言", max_tokens=30, sampling=SamplingSettings(seed=3))
    steps = list(gen)
    assert "".join(s.text for s in steps) == gen.text
    ids = [s.token_id for s in steps if not s.is_eos]
    assert gen.text == tiny_model.tokenizer.decode(ids)


def test_stops_at_max_tokens(tiny_model):
    gen = tiny_model.generate("The", max_tokens=4, sampling=GREEDY)
    assert len(list(gen)) == 4
    assert gen.stop_reason == "max_tokens"


def test_stops_at_eos(make_model):
    # An untied head that sends every position to EOS: the first step is EOS, and generation ends.
    model = make_model("tiny", tie_embeddings=False)
    eos = model.tokenizer.eos_id
    with torch.no_grad():
        model.transformer.head.weight.zero_()
        model.transformer.final_norm.weight.zero_()
        model.transformer.final_norm.bias.fill_(1.0)
        model.transformer.head.weight[:, eos] = 1.0
    gen = model.generate("The", max_tokens=10, sampling=GREEDY)
    steps = list(gen)
    assert len(steps) == 1 and steps[0].is_eos and steps[0].token_id == eos
    assert gen.stop_reason == "eos" and gen.text == ""


def test_stops_at_a_stop_string(tiny_model):
    full = tiny_model.generate("The", max_tokens=20, sampling=GREEDY)
    text = "".join(s.text for s in full)
    stop = text[6:9]
    assert len(stop) == 3
    gen = tiny_model.generate("The", max_tokens=20, sampling=GREEDY, stop=[stop])
    steps = list(gen)
    assert gen.stop_reason == "stop_string"
    assert len(steps) < 20
    assert gen.text == text[: text.find(stop)]


def test_close_stops_the_work(tiny_model):
    gen = tiny_model.generate("The", max_tokens=50, sampling=GREEDY)
    first = [next(gen) for _ in range(3)]
    gen.close()
    assert gen.stop_reason == "closed"
    with pytest.raises(StopIteration):
        next(gen)
    assert len(gen.steps) == len(first) == 3
    with tiny_model.generate("The", max_tokens=50) as g2:
        next(g2)
    assert g2.stop_reason == "closed"


def test_a_prompt_longer_than_the_window_is_cut_and_generation_slides(tiny_model):
    window = tiny_model.config.context_length
    prompt = tiny_model.encode("The capital of Indonesia is Jakarta. " * 20)
    gen = tiny_model.generate(prompt, max_tokens=window, sampling=SamplingSettings(seed=0))
    steps = list(gen)
    assert gen.dropped_prompt_tokens == len(prompt) - (window - 1)
    assert len(gen.prompt_ids) == window - 1
    assert len(steps) == window  # never crashes when the window fills
    assert gen.context_shifts >= 1
    assert any(s.context_shifted for s in steps)


def test_negative_max_tokens_is_refused(tiny_model):
    with pytest.raises(ValueError, match="max_tokens"):
        tiny_model.generate("The", max_tokens=-1)
