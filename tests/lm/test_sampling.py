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


# ----- extremes: every knob at its edge gives a distribution, never NaN ----------------------


def _is_distribution(probs: torch.Tensor) -> bool:
    return bool(torch.isfinite(probs).all() and (probs >= 0).all()) and float(probs.sum()) == (
        pytest.approx(1.0, abs=1e-5)
    )


@pytest.mark.parametrize("temperature", [1e-45, 1e-308, 5e-324, 1e-6, 0.0])
def test_a_temperature_below_the_threshold_is_greedy(temperature):
    from tokenscope.lm.sampling import MIN_TEMPERATURE

    logits = torch.tensor([1.0, 3.0, 2.9, -5.0])
    settings = SamplingSettings(temperature=temperature)
    assert settings.greedy and temperature < MIN_TEMPERATURE
    _, sampled = sampling_distribution(logits, settings)
    assert sampled.tolist() == [0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("temperature", [1e-5, 3e-5, 1e-3, 100.0])
def test_small_and_large_temperatures_on_huge_logits_stay_finite(temperature):
    # Logits near float32's largest: dividing them by a small temperature would overflow to
    # inf, and inf - inf in the softmax is NaN.
    big = torch.finfo(torch.float32).max
    logits = torch.tensor([big, big * 0.5, -big, 0.0])
    _, sampled = sampling_distribution(logits, SamplingSettings(temperature=temperature))
    assert _is_distribution(sampled)
    assert int(sampled.argmax()) == 0


@pytest.mark.parametrize("penalty", [1e-300, 1e-38, 1e-3, 100.0])
def test_a_repetition_penalty_far_from_one_stays_finite(penalty):
    big = torch.finfo(torch.float32).max / 2
    logits = torch.tensor([big, -big, 2.0, 1.0])
    penalised = apply_repetition_penalty(logits, [0, 1, 2], penalty)
    assert bool(torch.isfinite(penalised).all())
    for temperature in (0.0, 1e-5, 0.7, 1.0):
        _, sampled = sampling_distribution(
            logits, SamplingSettings(temperature=temperature, repetition_penalty=penalty), [0, 1, 2]
        )
        assert _is_distribution(sampled)


def test_a_tiny_penalty_makes_seen_tokens_overwhelmingly_likely():
    logits = torch.tensor([1.0, 5.0, 2.0])
    _, sampled = sampling_distribution(
        logits, SamplingSettings(temperature=1.0, repetition_penalty=1e-300), previous_ids=[0]
    )
    assert sampled[0] == pytest.approx(1.0)


def test_filters_at_their_edges_keep_the_top_token():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(2)) * 4
    top = int(logits.argmax())
    for settings in (
        SamplingSettings(top_k=10**30),  # more than the vocabulary: off
        SamplingSettings(top_p=1e-300),
        SamplingSettings(top_p=5e-324),
        SamplingSettings(min_p=1.0),
        SamplingSettings(top_k=1, top_p=1e-9, min_p=1.0, temperature=1e-5),
    ):
        _, sampled = sampling_distribution(logits, settings)
        assert _is_distribution(sampled) and int(sampled.argmax()) == top
    _, everything = sampling_distribution(logits, SamplingSettings(top_k=10**30, temperature=0.5))
    assert int((everything > 0).sum()) == 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": -1e-300},
        {"repetition_penalty": float("nan")},
        {"repetition_penalty": float("inf")},
        {"repetition_penalty": -1.0},
        {"repetition_penalty": 0.0},
        {"top_p": float("nan")},
        {"min_p": float("-inf")},
        {"top_k": -1},
    ],
)
def test_nonsense_values_are_refused_naming_the_knob(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        SamplingSettings(**kwargs)
