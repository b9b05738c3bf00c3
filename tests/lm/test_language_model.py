"""The seed API: predict_next_token_probabilities, get_most_likely_token, score, tokenize."""

import math

import pytest
import torch


def _direct_next_probs(model, ids):
    """Reference: a full forward pass with no cache, softmax at the last position."""
    with torch.no_grad():
        logits = model.transformer(torch.tensor([ids]))[0, -1]
    return torch.softmax(logits, -1)


def test_distribution_is_the_models_next_token_distribution(tiny_model):
    text = "The capital of Indonesia is"
    dist = tiny_model.predict_next_token_probabilities(text)
    expected = _direct_next_probs(tiny_model, tiny_model.encode(text))
    vector = dist.vector()
    assert vector.shape == (tiny_model.config.vocab_size,)
    assert vector.sum() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(torch.from_numpy(vector), expected, atol=1e-6)
    pairs = list(dist)
    assert len(pairs) == 10
    probs = [p for _, p in pairs]
    assert probs == sorted(probs, reverse=True)
    best = int(expected.argmax())
    assert tiny_model.get_most_likely_token(dist) == tiny_model.tokenizer.token_text(best)
    assert pairs[0] == (tiny_model.tokenizer.token_text(best), pytest.approx(float(expected[best])))
    assert dist.entropy == pytest.approx(float(-(expected * expected.log2()).sum()), rel=1e-4)


def test_probability_of_a_multi_token_continuation_is_the_chain_product(tiny_model):
    context = "The capital of Indonesia is"
    continuation = " Jakarta. The"
    dist = tiny_model.predict_next_token_probabilities(context)
    ctx, cont = tiny_model.encode(context), tiny_model.encode(continuation)
    assert len(cont) > 1
    expected = 1.0
    for i, token in enumerate(cont):
        expected *= float(_direct_next_probs(tiny_model, ctx + cont[:i])[token])
    assert dist.probability_of(continuation) == pytest.approx(expected, rel=1e-4)
    one = cont[0]
    assert dist.probability_of([one]) == pytest.approx(float(dist.vector()[one]))


def test_prefix_cache_gives_the_same_answers_as_a_fresh_model(tiny_model, make_model):
    fresh = make_model("tiny")
    prompts = ["The capital", "The capital of Indo", "The cap", "The capital of Indonesia is", "A"]
    for p in prompts:
        got = tiny_model.predict_next_token_probabilities(p).vector()
        fresh.forget_cache()
        want = fresh.predict_next_token_probabilities(p).vector()
        assert abs(got - want).max() < 1e-5, p
    # The same prompt twice must still return its distribution (the last position is recomputed).
    a = tiny_model.predict_next_token_probabilities("The capital").vector()
    b = tiny_model.predict_next_token_probabilities("The capital").vector()
    assert abs(a - b).max() < 1e-6


def test_sampling_knobs_shape_the_sampled_distribution_only(tiny_model):
    from tokenscope.lm import SamplingSettings

    plain = tiny_model.predict_next_token_probabilities("The")
    dist = tiny_model.predict_next_token_probabilities("The", sampling=SamplingSettings(top_k=3))
    assert abs(dist.vector() - plain.vector()).max() < 1e-6
    assert (dist.vector(sampled=True) > 0).sum() == 3
    assert len(dist.top(10, sampled=True)) == 3
    assert dist.removed_mass == pytest.approx(1 - sum(t.probability for t in dist.top(3)), rel=1e-4)


def test_a_prompt_longer_than_the_context_keeps_its_most_recent_tokens(tiny_model):
    window = tiny_model.config.context_length
    ids = tiny_model.encode("The capital of Indonesia is Jakarta. " * 20)
    assert len(ids) > window
    dist = tiny_model.predict_next_token_probabilities(ids)
    assert dist.dropped_tokens == len(ids) - window
    expected = _direct_next_probs(tiny_model, ids[-window:])
    assert torch.allclose(torch.from_numpy(dist.vector()), expected, atol=1e-5)


def test_an_empty_context_starts_from_the_document_boundary(tiny_model):
    dist = tiny_model.predict_next_token_probabilities("")
    eos = tiny_model.tokenizer.eos_id
    assert dist.context_ids == (eos,)
    assert dist.vector().sum() == pytest.approx(1.0, abs=1e-5)


def test_score_matches_a_direct_computation(tiny_model):
    text = "The capital of France is Paris."
    result = tiny_model.score(text)
    ids = tiny_model.encode(text)
    full = [tiny_model.tokenizer.eos_id, *ids]
    assert [t.token_id for t in result.tokens] == ids
    for i, t in enumerate(result.tokens):
        p = float(_direct_next_probs(tiny_model, full[: i + 1])[ids[i]])
        assert t.logprob == pytest.approx(math.log(p), abs=1e-4)
        assert t.bits == pytest.approx(-math.log2(p), abs=1e-4)
    assert result.perplexity == pytest.approx(2**result.bits_per_token)


def test_score_of_a_text_longer_than_the_context_scores_every_token(tiny_model):
    text = "The capital of Indonesia is Jakarta. " * 15
    ids = tiny_model.encode(text)
    window = tiny_model.config.context_length
    assert len(ids) > 2 * window
    result = tiny_model.score(text)
    assert all(t.logprob is not None for t in result.tokens)
    # A late token is scored with at least half a window of context before it.
    i = len(ids) - 1
    ctx = ([tiny_model.tokenizer.eos_id, *ids])[: i + 1]
    lp = result.tokens[i].logprob
    candidates = [
        math.log(float(_direct_next_probs(tiny_model, ctx[-n:])[ids[i]]))
        for n in range(window // 2, window)
    ]
    assert min(abs(lp - c) for c in candidates) < 1e-4


def test_tokenize_gives_ids_labels_and_spans(tiny_model):
    text = "Hi 语言\n\tok"
    tokens = tiny_model.tokenize(text)
    assert [t.token_id for t in tokens] == tiny_model.encode(text)
    tok = tiny_model.tokenizer
    assert b"".join(tok.token_bytes(t.token_id) for t in tokens) == text.encode()
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)
    assert tokens[0].start == 0 and tokens[-1].end == len(text)
    assert all(text[t.start : t.end] == t.text for t in tokens if t.text.isascii())
    assert any("↵" in t.display for t in tokens)


def test_tokenizer_larger_than_the_model_is_refused(bpe_tokenizer):
    from tokenscope.lm import LanguageModel, Transformer, preset

    with pytest.raises(ValueError, match="output rows"):
        LanguageModel(Transformer(preset("tiny", vocab_size=50)), bpe_tokenizer)


def test_prompts_scored_together_score_as_each_alone(tiny_model, monkeypatch):
    """lm-evaluation-harness sends many prompts in one request: scored as one padded batch
    (a few prompts at a time), each prompt's numbers are its own."""
    from tokenscope.lm import language_model

    texts = ["The capital of France is Paris.", "a", "", "Once upon a time, " * 3, "xyz"]
    ids = [tiny_model._context_ids(t) for t in texts]
    alone = [tiny_model.prompt_logprobs(i, 3) for i in ids]
    # A budget that holds two prompts a batch: several batches, shortest first.
    monkeypatch.setattr(language_model, "LOGITS_BUDGET", 2 * 40 * tiny_model.config.vocab_size)
    together = tiny_model.prompt_logprobs_batch(ids, 3)
    assert [len(t) for t in together] == [len(i) - 1 if len(i) > 1 else 0 for i in ids]
    for mine, ref in zip(together, alone, strict=True):
        assert [v for v, _ in mine] == pytest.approx([v for v, _ in ref], abs=1e-5)
        assert [[t for t, _ in top] for _, top in mine] == [[t for t, _ in top] for _, top in ref]
