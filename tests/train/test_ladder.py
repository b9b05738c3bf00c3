"""A size ladder (tokenscope.train.ladder, `--ladder`): sizes planned from a token budget, runs
that share one tokenizer, losses ordered by size, and the power-law fit."""

from __future__ import annotations

import math

import pytest

from tokenscope.train import ladder
from tokenscope.train.config import TrainConfig
from tokenscope.train.events import DoneEvent, ErrorEvent

from .conftest import run_config, train

TINY_SIZES = (
    {"n_layer": 1, "n_head": 1, "d_model": 8},
    {"n_layer": 2, "n_head": 2, "d_model": 32},
    {"n_layer": 3, "n_head": 4, "d_model": 96},
)


def test_the_fit_recovers_a_known_power_law():
    ns = [1e5, 4e5, 1.6e6, 6.4e6]
    fit = ladder.fit_power_law(ns, [2.0 * n**-0.3 + 1.5 for n in ns])
    assert fit.alpha == pytest.approx(0.3, abs=0.02) and fit.c == pytest.approx(1.5, abs=0.01)
    assert fit.predict(2.56e7) == pytest.approx(2.0 * 2.56e7**-0.3 + 1.5, abs=0.01)
    with pytest.raises(ValueError, match="finite"):
        ladder.fit_power_law([1e5, 1e6], [3.0, math.nan])
    with pytest.raises(ValueError, match="two or more"):
        ladder.fit_power_law([1e5], [3.0])


def test_the_default_ladder_spans_30x_and_budgets_tokens(tmp_path):
    base = TrainConfig.from_dict({"data": ["x"], "out_dir": str(tmp_path / "ladder"),
                                  "vocab_size": 2048, "context": 64, "batch_size": 16})  # fmt: skip
    configs = ladder.plan(base)
    params = [c.model_config(2048).parameter_count() for c in configs]
    assert params == sorted(params) and params[-1] / params[0] >= 30
    assert {c.steps for c in configs} == {math.ceil(ladder.DEFAULT_TOKENS / (16 * 64))}
    assert [c.out_dir for c in configs] == [str(tmp_path / "ladder" / f"size-{i}")
                                            for i in range(1, 5)]  # fmt: skip
    # Each size gets a curve: eight evaluations (probes) and four checkpoints at least.
    for c in configs:
        assert c.eval_every <= c.steps // 8 and c.checkpoint_every <= c.steps // 4
        assert c.keep_checkpoints >= 4
    optimal = ladder.plan(base, tokens=None, tokens_per_parameter=ladder.COMPUTE_OPTIMAL)
    for c, n in zip(optimal, params, strict=True):
        assert c.steps == math.ceil(20 * n / (16 * 64))
    with pytest.raises(ValueError, match="either a token budget"):
        ladder.plan(base, tokens=10, tokens_per_parameter=20)


def test_three_tiny_sizes_train_in_order_and_fit(tmp_path, monkeypatch):
    # (Measured: val losses 4.36, 2.18, 0.34 for 3.8 k, 37 k and 371 k parameters.)
    path = run_config(tmp_path, steps=60, eval_every=60, checkpoint_every=60, sample_every=60,
                      probes=[], learning_rate=0.003, eval_batches=8)  # fmt: skip
    base = TrainConfig.from_file(path)
    configs = ladder.plan(base, TINY_SIZES, tokens=60 * 8 * 32)
    results = ladder.run_ladder(configs)
    assert [r.status for r in results] == ["completed"] * 3
    tokenizers = {(tmp_path / "run" / f"size-{i}" / "tokenizer.json").read_text()
                  for i in (1, 2, 3)}  # fmt: skip
    assert len(tokenizers) == 1  # one vocabulary for all
    losses = [r.val_loss for r in results]
    assert losses[0] > losses[1] > losses[2], losses
    fit = ladder.fit_power_law([r.parameters for r in results], losses)
    assert fit.alpha > 0 and fit.predict(4 * results[-1].parameters) < losses[-1]


def test_the_command_line_ladder_refuses_a_bad_budget(tmp_path):
    events, proc = train("--config", run_config(tmp_path), "--ladder", "--ladder-tokens", "0",
                         ok=False)  # fmt: skip
    assert proc.returncode == 2 and "--ladder-tokens must be at least 1" in proc.stderr
    assert [type(e) for e in events] == [ErrorEvent, DoneEvent]  # as for any refused run
