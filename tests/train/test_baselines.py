"""The n-gram and LSTM baselines: real distributions, and comparable perplexities."""

import math

import numpy as np
import pytest

from tokenscope.train.baselines import NGramModel
from tokenscope.train.events import BaselineEvent, EvalEvent, StartEvent


def test_ngram_probabilities_form_a_distribution_for_every_context():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, size=3000)
    model = NGramModel(vocab_size=15).fit(tokens)  # ids 12..14 never seen
    for context in ([1, 2], [3, 3], [13, 14]):
        candidates = np.array([[*context, t] for t in range(15)])
        total = sum(float(model.probabilities(c)[0]) for c in candidates)
        assert total == pytest.approx(1.0, abs=1e-9)
        assert all(float(model.probabilities(c)[0]) > 0 for c in candidates)


def test_ngram_learns_a_repeating_pattern():
    pattern = np.tile(np.array([0, 1, 2, 3, 4]), 400)
    model = NGramModel(vocab_size=10).fit(pattern)
    assert model.perplexity(pattern[:200]) < 1.5
    noise = np.random.default_rng(1).integers(0, 10, size=200)
    assert model.perplexity(noise) > 5


@pytest.mark.slow
def test_baselines_report_beside_the_run(tmp_path, tools):
    config = tools.run_config(tmp_path, steps=10, eval_every=10)
    events, _ = tools.train("--config", config)
    run_val = tools.of_kind(events, EvalEvent)[-1].val_perplexity
    more, _ = tools.train("--run", tmp_path / "run", "--baselines")
    baselines = {e.model: e for e in tools.of_kind(more, BaselineEvent)}
    assert set(baselines) == {"ngram", "lstm"}
    vocab = tools.of_kind(events, StartEvent)[0].model["vocab_size"]
    for result in baselines.values():
        assert 1.0 < result.val_perplexity < vocab  # better than guessing uniformly
        assert result.val_loss == pytest.approx(math.log(result.val_perplexity))
    assert run_val > 1.0
    from tokenscope.train.events import read_events

    assert [type(e) for e in read_events(tmp_path / "run" / "events.jsonl")].count(
        BaselineEvent
    ) == 2
