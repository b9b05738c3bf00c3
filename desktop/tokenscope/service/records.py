"""What the model service hands back: small frozen records, ready to display, never tensors.

Generation steps are the engine's own GenerationStep records (already display-ready: the
token, its label and the top alternatives captured when it was drawn); tokens are the
engine's Token records; few-shot scores are AnswerScore and SweepPoint records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """The model that is now loaded, and the epoch that names it."""

    epoch: int
    target: str  # what was asked for: a name, a file or a folder
    name: str
    source: str
    parameters: int
    layers: int
    context_length: int
    vocab_size: int
    device: str
    architecture: str
    quantization: str | None
    has_chat_template: bool
    threads: int  # torch threads the model runs with
    packing: str | None = None  # how the weights are held, e.g. "fp16 head + int4 g32"
    compiled: bool = False  # decoding through the compiled step
    note: str = ""  # something the person should know about this load, e.g. why not compiled
    heads: int = 0  # attention heads per layer (0: not known, a model on a server)
    remote: str = ""  # a model on a server: what it returns ("llama.cpp · top-100 · raw")
    can_score: bool = True  # it can score a given continuation (a server: prompt log-probs)


@dataclass(frozen=True)
class LoadProgress:
    """Where a load is: a stage ("converting the weights") and, when known, done of total."""

    stage: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One bar of a next-token chart."""

    rank: int  # 1 for the most likely token under the raw distribution
    token_id: int
    label: str  # readable: "␣Jak", "↵", "<E4>"
    raw: float  # probability under the model
    sampled: float  # probability after the sampling knobs


@dataclass(frozen=True)
class NextTokenView:
    """A next-token distribution, reduced to what a chart shows."""

    rows: tuple[TokenRow, ...]  # the top tokens by raw probability
    entropy_bits: float  # of the raw distribution
    removed_mass: float  # raw probability the knobs made impossible
    context_ids: tuple[int, ...]  # what the model saw (after BOS and cutting to the window)
    dropped_tokens: int = 0  # prompt tokens cut from the front to fit the window
    watch_text: str = ""
    watch_probability: float | None = None
    seconds: float = 0.0
    recomputed: bool = True  # False when only the knobs changed and the model did not run
    # A model on a server lists only its top tokens: `other` is the probability of every
    # token without a bar (None: the whole vocabulary is known), `source` says what was
    # returned ("remote · top-20 · raw"), `approximate` that the after-sampling values are
    # estimated from the listed tokens, `watch_note` why a watched probability is unknown.
    other: float | None = None
    other_sampled: float = 0.0
    source: str = ""
    approximate: bool = False
    watch_note: str = ""


@dataclass(frozen=True)
class GenerationStarted:
    """Generation has begun; the model sees these prompt ids (after BOS and the window)."""

    prompt_ids: tuple[int, ...]


@dataclass(frozen=True)
class GenerationDone:
    """Generation ended: "eos", "stop_string" or "max_tokens"."""

    reason: str
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class FewShotView:
    """A few-shot prompt as the model sees it, and how it scores the answers."""

    text: str
    parts: tuple[Any, ...]  # PromptPart records
    token_count: int
    context_length: int
    chart: NextTokenView  # the next token after the assembled prompt
    expected: Any  # AnswerScore, or None without an expected answer
    candidates: tuple[tuple[str, float, float], ...]  # (candidate, probability, normalised)
    note: str = ""  # e.g. why the answers could not be scored on this model


@dataclass(frozen=True)
class SweepProgress:
    """A sweep is at point `done` of `total` on `model` (total 0: the model is loading)."""

    model: str
    done: int
    total: int


@dataclass(frozen=True)
class SweepSeries:
    """Every point of one model's sweep."""

    model: str
    points: tuple[Any, ...]  # SweepPoint records
    note: str = ""  # e.g. that some points of a model on a server are upper bounds


@dataclass(frozen=True)
class LensView:
    """The logit lens at one position: a row per layer (embeddings first)."""

    labels: tuple[str, ...]  # the tokens the model saw
    position: int
    target_label: str  # the model's own prediction there
    first_top_layer: int | None
    rows: tuple[Any, ...]  # tokenscope.lm.inside.LensRow records
    seconds: float = 0.0


@dataclass(frozen=True)
class AttentionView:
    """One layer's attention (a head, or the heads averaged) over the model's tokens."""

    labels: tuple[str, ...]
    layer: int
    head: int | None
    weights: Any  # (T, T) numpy array, rows sum to 1
    layers: int
    heads: int
    ablated: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True)
class SurprisalProgress:
    model: str
    done: int
    total: int


@dataclass(frozen=True)
class SurprisalView:
    """A text's surprisal under one model, or two and their differences."""

    results: tuple[Any, ...]  # tokenscope.lm.inside.Surprisal records, one or two
    disagreements: tuple[tuple[int, int, float, float], ...] = ()  # (start, end, A, B)


@dataclass(frozen=True)
class ScaleProgress:
    """A scale run is measuring `label` (a model, or a run's checkpoint): unit `done` of
    `total` (models and checkpoints together)."""

    label: str
    done: int
    total: int


@dataclass(frozen=True)
class ScaleResult:
    """One model's answer in a scale run: a ScalePoint (a probe) or a ScaleSweep (a few-shot
    task), and for a run the probe on each of its checkpoints (a TrainingCurve); or the
    error that kept it from being measured."""

    target: str
    point: Any = None  # tokenscope.lm.scale.ScalePoint
    sweep: Any = None  # tokenscope.lm.scale.ScaleSweep
    curve: Any = None  # tokenscope.train.probe_runs.TrainingCurve, for a run
    error: str = ""
