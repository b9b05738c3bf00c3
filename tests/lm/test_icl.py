"""The in-context learning measures (tokenscope.lm.icl) on a hand-built copier and at random."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tokenscope.lm import icl
from tokenscope.lm.inside import ablated, head_scores

from .test_inside import _copier  # the hand-built two-layer copier of the lens tests


def test_head_scores_name_the_previous_token_head_and_the_induction_head(bpe_tokenizer):
    copier = _copier(bpe_tokenizer)
    scores = head_scores(copier, seed=1)
    assert scores.induction.shape == scores.previous_token.shape == (2, 1)
    assert scores.previous_token[0, 0] > 0.8, scores  # layer 0 looks one back
    assert scores.induction[0, 0] < 0.1, scores
    assert scores.induction[1, 0] > 0.8, scores  # layer 1 copies
    assert scores.previous_token[1, 0] < 0.2, scores
    assert scores.strongest_induction_head() == (1, 0)
    assert scores.induction_max == pytest.approx(scores.induction[1, 0])


def test_a_random_model_has_neither(make_model):
    scores = head_scores(make_model("tiny", seed=3), seed=2)
    assert scores.induction_max < 0.2 and scores.previous_token_max < 0.5, scores


def test_icl_score_is_late_loss_minus_early_loss():
    window = 40
    early, late = icl.icl_positions(window)
    assert (early.start, early.stop, late.start, late.stop) == (2, 4, 36, 40)
    losses = np.tile(np.linspace(5.0, 1.0, window), (3, 1))  # better with more context
    expected = losses[0, 36:40].mean() - losses[0, 2:4].mean()
    assert icl.icl_from_losses(losses) == pytest.approx(expected)
    assert icl.icl_from_losses(np.full((2, window), 3.0)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="window of 10 tokens"):
        icl.icl_positions(9)


def _copying(tokenizer):
    """The copier, its induction head now also moving the attended token into the output."""
    model = _copier(tokenizer)
    v, d = model.config.vocab_size, model.config.d_model
    with torch.no_grad():
        attn = model.transformer.blocks[1].attn
        attn.qkv.weight[torch.arange(v), 2 * d + torch.arange(v)] = 1.0  # value: the token
        attn.out.weight[torch.arange(v), torch.arange(v)] = 20.0  # -> the token's own dims
    return model


def test_the_copier_learns_from_context_and_loses_it_without_its_induction_head(bpe_tokenizer):
    copier = _copying(bpe_tokenizer)
    pool = icl.token_pool(bpe_tokenizer, copier.config.vocab_size)
    windows = icl.repeated_sequences(pool, 32, 6, seed=5)  # (6, 64): random, then again
    with_head = icl.icl_score(copier.transformer, windows)
    with ablated(copier, {(1, 0)}):
        without = icl.icl_score(copier.transformer, windows)
    assert with_head < -0.5, with_head  # the second copy is predicted from the first
    assert abs(without) < abs(with_head) / 4, (with_head, without)
    losses = icl.position_losses(copier.transformer, windows)
    assert losses.shape == (6, 63) and torch.isfinite(losses).all()


def test_repeated_sequences_repeat_and_refuse_a_tiny_pool():
    ids = icl.repeated_sequences(np.arange(10, 50), 8, 3, seed=0, bos_id=1)
    assert ids.shape == (3, 17) and (ids[:, 0] == 1).all()
    assert (ids[:, 1:9] == ids[:, 9:]).all()
    with pytest.raises(ValueError, match="at least 2 tokens"):
        icl.repeated_sequences([7], 4, 1)


def test_the_transition_is_the_steepest_fall_of_the_icl_score():
    steps = [100, 200, 300, 400, 600]
    assert icl.transition(steps, [-0.1, -0.12, -0.9, -1.0, -1.1]) == 300
    assert icl.transition(steps, [-0.1, -0.05, 0.0, 0.1, 0.2]) is None  # it never falls
    assert icl.transition([], []) is None
    with pytest.raises(ValueError, match="one score per step"):
        icl.transition([1, 2], [0.0])


def test_the_report_of_a_copier_on_repeating_text_says_its_head_carries_it(bpe_tokenizer):
    copier = _copying(bpe_tokenizer)
    text = " ".join(f"w{i} x{i * 7 % 13} y{i % 5}" for i in range(60))
    r = icl.report(copier, text + " " + text, count=2)
    assert r.strongest_head == (1, 0)
    assert r.icl_score < 0 and r.undone is not None and r.undone > 0.5, r
    with pytest.raises(ValueError, match="too short"):
        icl.report(copier, "a b", count=1)


def test_position_losses_are_the_full_forward_passes_made_a_slice_at_a_time(
    make_model, monkeypatch
):
    import torch.nn.functional as F

    model = make_model("tiny", seed=5)
    v = model.config.vocab_size
    windows = torch.randint(0, v, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.transformer(windows[:, :-1]).float()
    expected = F.cross_entropy(logits.reshape(-1, v), windows[:, 1:].reshape(-1),
                               reduction="none").reshape(3, 39)  # fmt: skip
    monkeypatch.setattr(icl, "LOGITS_AT_ONCE", 7 * v)  # 7 positions' logits at a time
    assert torch.allclose(icl.position_losses(model.transformer, windows), expected, atol=1e-5)
