"""Sampling functions: each knob's defining property, on hand-made and random distributions."""

import pytest
import torch

from tokenscope.lm.sampling import (
    SamplingSettings,
    apply_repetition_penalty,
    draw,
    entropy_bits,
    min_p_filter,
    sampling_distribution,
    softmax,
    top_k_filter,
    top_p_filter,
)

P = torch.tensor(
    [0.05, 0.4, 0.1, 0.3, 0.15]
)  # sorted: 0.4 (1), 0.3 (3), 0.15 (4), 0.1 (2), 0.05 (0)


def _random_probs(seed: int, n: int = 50) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return softmax(torch.randn(n, generator=g) * 3)


def test_top_k_keeps_exactly_the_k_most_likely():
    out = top_k_filter(P, 2)
    assert set(torch.nonzero(out).flatten().tolist()) == {1, 3}
    assert out[1] == pytest.approx(0.4 / 0.7)
    assert out.sum() == pytest.approx(1.0)
    assert torch.equal(top_k_filter(P, 0), P)  # 0 is off


@pytest.mark.parametrize("p", [0.3, 0.4, 0.5, 0.7, 0.71, 0.85, 0.99])
def test_top_p_keeps_the_smallest_set_reaching_p(p):
    out = top_p_filter(P, p)
    kept = torch.nonzero(out).flatten().tolist()
    kept_mass = float(P[kept].sum())
    assert kept_mass >= p - 1e-6  # reaches p ...
    smallest = min(float(P[i]) for i in kept)
    assert kept_mass - smallest < p  # ... and dropping its least likely token would not
    assert all(float(P[j]) <= smallest for j in range(5) if j not in kept)  # top tokens only
    assert out.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_top_p_property_on_random_distributions(seed):
    probs = _random_probs(seed)
    for p in (0.1, 0.5, 0.9):
        kept = torch.nonzero(top_p_filter(probs, p)).flatten()
        ordered = torch.sort(probs, descending=True).values
        n = len(kept)
        assert float(ordered[:n].sum()) >= p - 1e-6
        assert n == 1 or float(ordered[: n - 1].sum()) < p


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    out = min_p_filter(P, 0.5)  # threshold 0.2
    assert set(torch.nonzero(out).flatten().tolist()) == {1, 3}
    assert torch.equal(min_p_filter(P, 0.0), P)


def test_repetition_penalty_follows_the_sign_rule():
    logits = torch.tensor([2.0, -2.0, 1.0])
    out = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]
    assert logits.tolist() == [2.0, -2.0, 1.0]  # pure: the input is untouched


def test_temperature_sharpens_and_flattens():
    logits = torch.log(P)
    _, cold = sampling_distribution(logits, SamplingSettings(temperature=0.5))
    _, hot = sampling_distribution(logits, SamplingSettings(temperature=2.0))
    assert entropy_bits(cold) < entropy_bits(P) < entropy_bits(hot)
    assert cold[1] > P[1] > hot[1]


def test_temperature_zero_is_greedy_after_the_penalty():
    logits = torch.log(P)
    raw, sampled = sampling_distribution(logits, SamplingSettings(temperature=0))
    assert torch.allclose(raw, P)
    assert sampled.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    _, penalised = sampling_distribution(
        logits, SamplingSettings(temperature=0, repetition_penalty=3.0), previous_ids=[1]
    )
    assert int(penalised.argmax()) == 3


def test_raw_distribution_ignores_the_knobs():
    logits = torch.randn(30)
    raw, sampled = sampling_distribution(
        logits, SamplingSettings(temperature=0.7, top_k=5, top_p=0.8, min_p=0.05)
    )
    assert torch.allclose(raw, torch.softmax(logits, -1))
    assert 1 <= int((sampled > 0).sum()) <= 5
    assert sampled.sum() == pytest.approx(1.0)


def test_identity_settings_return_the_raw_distribution():
    logits = torch.randn(10)
    raw, sampled = sampling_distribution(logits, SamplingSettings())
    assert sampled is raw


def test_seeded_draws_are_reproducible_and_follow_the_distribution():
    probs = torch.tensor([0.7, 0.2, 0.1])
    a = [draw(probs, torch.Generator().manual_seed(3)) for _ in range(3)]
    g1, g2 = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    seq1 = [draw(probs, g1) for _ in range(200)]
    seq2 = [draw(probs, g2) for _ in range(200)]
    assert seq1 == seq2 and len(set(a)) == 1
    assert 0.55 < seq1.count(0) / 200 < 0.85
    assert draw(torch.tensor([0.0, 1.0, 0.0])) == 1


def test_entropy_bits():
    assert entropy_bits(torch.tensor([1.0, 0.0])) == 0.0
    assert entropy_bits(torch.full((8,), 1 / 8)) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**kwargs)
