"""Plain-language notes on what a learner should notice in a run, made from its events.

No Qt here: the tab feeds events in and shows the notes that come out, so the rules are
easy to test and to read.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from tokenscope.train.events import (
    BaselineEvent,
    EvalEvent,
    Event,
    ProbeEvent,
    StartEvent,
    StepEvent,
)

SPIKE_RATIO = 1.5  # a step loss this many times the recent average counts as a spike
SPIKE_WARMUP = 10  # step points before spikes are judged (early losses fall fast anyway)
EMA = 0.9
OVERFIT_EVALS = 2  # validation rises this many evals in a row while training loss falls
OVERFIT_MIN_RISE = 0.02  # ...and by at least this fraction of its value
EPOCH_MARKS = (1, 10, 100, 1000)  # passes over the training text worth a word
PROBE_RISE = 10.0  # a probe this many times more likely than at first is worth a word
BASELINE_NAMES = {"ngram": "n-gram (trigram) model", "lstm": "LSTM"}


@dataclass
class LearningNotes:
    """Turns events into notes; each kind of note is said once per episode, not per event."""

    _average: float | None = None
    _points: int = 0
    _last_spike_step: int = -1_000_000
    _evals: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train, val)
    _overfit_said: bool = False
    _probe_said: set[str] = field(default_factory=set)
    _probe_first: dict[str, float] = field(default_factory=dict)
    _probe_rise_said: set[str] = field(default_factory=set)
    _start_said: bool = False
    _train_tokens: int | None = None  # tokens in the training split, when the run says
    _epochs_said: set[int] = field(default_factory=set)
    _baselines: dict[str, float] = field(default_factory=dict)  # model -> validation loss
    _passed: set[str] = field(default_factory=set)

    def reset(self) -> None:
        """Forget everything (a different run is shown)."""
        self.__init__()  # type: ignore[misc]

    def feed(self, event: Event) -> list[str]:
        """New notes caused by this event (usually none)."""
        match event:
            case StartEvent():
                return self._on_start(event)
            case StepEvent():
                return self._on_step(event)
            case EvalEvent():
                return self._on_eval(event)
            case ProbeEvent():
                return self._on_probe(event)
            case BaselineEvent():
                return self._on_baseline(event)
        return []

    def _on_start(self, event: StartEvent) -> list[str]:
        if event.resumed_from is not None:
            # The curve before the resume is kept; the averages start over from here.
            self._average, self._points = None, 0
            return [f"Resumed from the checkpoint at step {event.resumed_from}."]
        train_tokens = event.corpus.get("train_tokens")
        if isinstance(train_tokens, int) and train_tokens > 0:
            self._train_tokens = train_tokens
        vocab = event.model.get("vocab_size")
        if self._start_said or not vocab:
            return []
        self._start_said = True
        return [
            f"At the start the model guesses: with {vocab} tokens, a uniform guess has a loss "
            f"of ln({vocab}) = {math.log(vocab):.2f}. Watch the loss fall below that as it "
            "learns which tokens are common, then which follow which."
        ]

    def _epochs(self, event: StepEvent) -> list[str]:
        if not self._train_tokens:
            return []
        epochs = event.tokens / self._train_tokens
        for mark in EPOCH_MARKS:
            if epochs >= mark and mark not in self._epochs_said:
                self._epochs_said.add(mark)
                if mark == 1:
                    return [
                        f"Step {event.step}: the model has now read its whole training "
                        "text once (one epoch). From here on it sees every passage again."
                    ]
                return [
                    f"Step {event.step}: {mark} passes over the training text. Each "
                    "pass teaches less that carries over to new text and more of this text "
                    "by heart: watch whether the validation loss still falls."
                ]
        return []

    def _on_step(self, event: StepEvent) -> list[str]:
        loss, step = event.loss, event.step
        if loss is None or not math.isfinite(loss):
            return []
        notes = self._epochs(event)
        average = self._average
        if (
            average is not None
            and self._points >= SPIKE_WARMUP
            and loss > SPIKE_RATIO * average
            and step - self._last_spike_step > 20
        ):
            self._last_spike_step = step
            notes.append(
                f"Loss spike at step {step}: {loss:.2f} against a recent average of "
                f"{average:.2f}. A learning rate that is too high or an unusual batch can do "
                "this; if the loss comes back down, training recovered."
            )
            return notes  # a spike does not enter the average, so the next one is judged fairly
        self._average = loss if average is None else EMA * average + (1 - EMA) * loss
        self._points += 1
        return notes

    def _on_eval(self, event: EvalEvent) -> list[str]:
        train, val = event.train_loss, event.val_loss
        if train is None or val is None:
            return []
        first = not self._evals
        self._evals.append((event.step, train, val))
        if first:
            return [
                f"First evaluation (step {event.step}): validation loss {val:.2f}, a "
                f"perplexity of {math.exp(min(val, 50)):,.1f}: on text it has not trained on, "
                f"the model is as unsure as if it chose among {math.exp(min(val, 50)):,.0f} "
                "equally likely tokens. Lower is better."
            ]
        passed = self._passing_baselines(event.step, val)
        if passed:
            return passed
        recent = self._evals[-(OVERFIT_EVALS + 1) :]
        if len(recent) <= OVERFIT_EVALS:
            return []
        val_rising = all(b[2] > a[2] for a, b in itertools.pairwise(recent))
        train_falling = all(b[1] < a[1] for a, b in itertools.pairwise(recent))
        # Tiny wobbles on a plateau are noise, not overfitting: the rise must be visible.
        val_rising = val_rising and recent[-1][2] - recent[0][2] > OVERFIT_MIN_RISE * recent[0][2]
        if val_rising and train_falling:
            if self._overfit_said:
                return []
            self._overfit_said = True
            return [
                f"Validation loss is rising while training loss falls (since step "
                f"{recent[0][0]}): the model is likely overfitting, memorising its training "
                "text instead of learning what carries over. More text, dropout or the best "
                "checkpoint (lowest validation loss) help."
            ]
        if not val_rising:
            self._overfit_said = False  # a later episode is worth saying again
        return []

    def _passing_baselines(self, step: int, val: float) -> list[str]:
        notes = []
        for model, loss in self._baselines.items():
            if val < loss and model not in self._passed:
                self._passed.add(model)
                notes.append(
                    f"Step {step}: the Transformer's validation loss ({val:.2f}) is now below "
                    f"the {BASELINE_NAMES.get(model, model)}'s ({loss:.2f})."
                )
        return notes

    def _on_baseline(self, event: BaselineEvent) -> list[str]:
        model, loss = event.model, event.val_loss
        if loss is None or not math.isfinite(loss):
            return []
        self._baselines[model] = loss
        name = BASELINE_NAMES.get(model, model)
        if not self._evals:
            return []
        best = min(v for _, _, v in self._evals)
        if best < loss:
            self._passed.add(model)
            return [
                f"The Transformer beats the {name}: validation perplexity "
                f"{math.exp(best):,.1f} against {math.exp(loss):,.1f}. It can use everything "
                "in its context window, where the n-gram model sees two tokens back."
            ]
        why = (
            "An n-gram model only counts which token followed the two before it; on a small "
            "text those counts are most of what there is to learn, and it needs no training "
            "to use them. The Transformer has far more parameters than this text can pin "
            "down: with more text (or more steps) its longer context wins."
            if model == "ngram"
            else "An LSTM reads the text one token at a time and learns quickly on small "
            "corpora; a Transformer usually needs more text to pull ahead."
        )
        return [
            f"The {name} beats the Transformer on this text: validation perplexity "
            f"{math.exp(loss):,.1f} against {math.exp(best):,.1f}. {why}"
        ]

    def _on_probe(self, event: ProbeEvent) -> list[str]:
        p = event.probability
        key = f"{event.prompt}\u241f{event.continuation}"
        if p is None:
            return []
        first = self._probe_first.setdefault(key, p)
        if p < 0.5 and first > 0 and p >= PROBE_RISE * first and key not in self._probe_rise_said:
            self._probe_rise_said.add(key)
            return [
                f"At step {event.step} the probability of {event.continuation!r} "
                f"after {event.prompt!r} has risen from {first:.2%} to {p:.2%}: the "
                "model is picking up this fact, not yet sure of it."
            ]
        if p < 0.5 or key in self._probe_said:
            return []
        self._probe_said.add(key)
        return [
            f"At step {event.step} the model gives {event.continuation!r} after "
            f"{event.prompt!r} a probability of {p:.0%}: it has learned this fact "
            "from the text."
        ]
