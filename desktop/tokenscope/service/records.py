"""What the model service hands back: small frozen records, ready to display, never tensors.

Tokens use the engine's one vocabulary (tokenscope.lm.tokens: Token, TokenProbability,
GenerationStep); few-shot scores are AnswerScore and SweepPoint records; long jobs report
where they are with one Progress record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenscope.lm.backend import Capabilities
from tokenscope.lm.tokens import TokenProbability

if TYPE_CHECKING:  # for the types only: importing tokenscope.lm.inside imports torch
    import numpy as np

    from tokenscope.lm.fewshot.prompt import PromptPart
    from tokenscope.lm.fewshot.scoring import AnswerScore, SweepPoint
    from tokenscope.lm.inside import LensRow
    from tokenscope.lm.inside import Surprisal as SurprisalResult
    from tokenscope.lm.scale import ScaleICL, ScalePoint, ScaleSweep
    from tokenscope.train.probe_runs import ICLCurvePoint, TrainingCurve


@dataclass(frozen=True)
class ModelInfo:
    """The model that is now loaded, what it can do, and the epoch that names it."""

    epoch: int
    target: str  # what was asked for: a name, a file, a folder or a server
    name: str
    source: str
    parameters: int  # 0 where a server does not say
    layers: int
    context_length: int
    vocab_size: int
    device: str
    architecture: str
    quantization: str | None
    threads: int  # torch threads the model runs with (0: a server decides)
    capabilities: Capabilities
    packing: str | None = None  # how the weights are held, e.g. "fp16 head + int4 g32"
    compiled: bool = False  # decoding through the compiled step
    compiling: bool = False  # the compiled step is being built in the background
    note: str = ""  # something the person should know about this load, e.g. why not compiled
    heads: int = 0  # attention heads per layer (0: not known, a model on a server)


@dataclass(frozen=True)
class Progress:
    """Where a long job is: what it is doing ("converting the weights", a model's name) and,
    when known, `done` of `total` (0 of 0: not known, e.g. a model being loaded)."""

    label: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class NextTokenView:
    """A next-token distribution, reduced to what a chart shows."""

    rows: tuple[TokenProbability, ...]  # the top tokens by raw probability (rank = index + 1)
    entropy_bits: float  # of the raw distribution (a lower bound unless `entropy_exact`)
    removed_mass: float  # raw probability the knobs made impossible
    context_ids: tuple[int, ...]  # what the model saw (after BOS and cutting to the window)
    dropped_tokens: int = 0  # prompt tokens cut from the front to fit the window
    watch_text: str = ""
    watch_probability: float | None = None
    seconds: float = 0.0
    recomputed: bool = True  # False when only the knobs changed and the model did not run
    # A model that lists only its top tokens (a server): `other` is the probability of
    # every token without a bar (None: the whole vocabulary is known), `label` says what was
    # returned ("remote · top-20 · raw"), `approximate` that the after-sampling values are
    # estimated from the listed tokens, `watch_note` why a watched probability is unknown or
    # only a bound.
    other: float | None = None
    other_sampled: float = 0.0
    label: str = ""
    approximate: bool = False
    watch_note: str = ""
    entropy_exact: bool = True


@dataclass(frozen=True)
class GenerationStarted:
    """Generation has begun; the model sees these prompt ids (after BOS and the window; none
    where a server does not say), `dropped_tokens` having been cut to fit the window."""

    prompt_ids: tuple[int, ...]
    dropped_tokens: int = 0


@dataclass(frozen=True)
class GenerationDone:
    """Generation ended: "eos", "stop_string" or "max_tokens"; `text` is what was generated
    (without a stop string that ended it)."""

    reason: str
    tokens: int
    seconds: float
    text: str = ""
    tail: str = ""  # text after the last step's (see GenerationStream.flushed)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class FewShotView:
    """A few-shot prompt as the model sees it, and how it scores the answers."""

    text: str
    parts: tuple[PromptPart, ...]
    token_count: int
    context_length: int
    chart: NextTokenView  # the next token after the assembled prompt
    expected: AnswerScore | None  # None without an expected answer
    candidates: tuple[tuple[str, float, float], ...]  # (candidate, probability, normalised)
    note: str = ""  # e.g. why the answers could not be scored on this model
    upper_bound: bool = False  # some score is only an upper bound (a server's top-k list)


@dataclass(frozen=True)
class SweepSeries:
    """Every point of one model's sweep."""

    model: str
    points: tuple[SweepPoint, ...]
    note: str = ""  # e.g. that some points of a model on a server are upper bounds


@dataclass(frozen=True)
class LensView:
    """The logit lens at one position: a row per layer (embeddings first)."""

    labels: tuple[str, ...]  # the tokens the model saw
    position: int
    target_label: str  # the model's own prediction there
    first_top_layer: int | None
    rows: tuple[LensRow, ...]
    seconds: float = 0.0
    target: int = 0  # its token id
    dropped_tokens: int = 0


@dataclass(frozen=True)
class AttentionView:
    """One layer's attention (a head, or the heads averaged) over the model's tokens."""

    labels: tuple[str, ...]
    layer: int
    head: int | None
    weights: np.ndarray  # (T, T), rows sum to 1
    layers: int
    heads: int
    ablated: frozenset[tuple[int, int]] = frozenset()
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class SurprisalView:
    """A text's surprisal under one model, or two and their differences."""

    results: tuple[SurprisalResult, ...]  # one or two
    disagreements: tuple[tuple[int, int, float, float], ...] = ()  # (start, end, A, B)


@dataclass(frozen=True)
class ScaleResult:
    """One model's answer in a scale run: a ScalePoint (a probe) or a ScaleSweep (a few-shot
    task), and for a run the probe on each of its checkpoints (a TrainingCurve); or the
    error that kept it from being measured."""

    target: str
    point: ScalePoint | None = None
    sweep: ScaleSweep | None = None
    curve: TrainingCurve | None = None  # for a run
    icl: ScaleICL | None = None  # in-context learning (a ScaleRun with icl_text)
    icl_curve: tuple[ICLCurvePoint, ...] = ()  # for a run: at each checkpoint
    error: str = ""
