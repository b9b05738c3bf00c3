"""The jobs the model service runs: small frozen records saying what is asked.

`interactive` jobs are short (one forward pass or so) and run as soon as they arrive, even
between the tokens of a long generation; the others are long and advance a unit at a time,
taking turns. `needs_model` jobs belong to the model epoch they were asked for: if another
model has been loaded since, they are dropped instead of run on the wrong model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from tokenscope.lm.fewshot import FewShotPrompt
    from tokenscope.lm.sampling import SamplingSettings
    from tokenscope.lm.scale import Probe
    from tokenscope.lm.tokens import GenerationStep


@dataclass(frozen=True)
class Job:
    interactive: ClassVar[bool] = False
    needs_model: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Load(Job):
    """Load a model (a name, a file or a folder) and make it the current one (a new epoch).

    Yields Progress records; finishes with ModelInfo. If it fails or is cancelled, the
    current model stays.
    """

    needs_model: ClassVar[bool] = False

    target: str
    dtype: str | None = None  # see tokenscope.lm.loading.DTYPE_CHOICES; None: auto
    threads: int | None = None  # torch threads for this model; None: chosen from its size
    # Decode through a compiled step (lm.compiled), built in the background (see
    # lm.background_compile): the eager model serves until it takes over; CompileStatus tells.
    compile: bool = False
    # A model on a server (target "http://HOST:PORT/v1#NAME"): its API key when typed in;
    # None: the environment variable, else the system keyring. Never shown in a repr.
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str = "TOKENSCOPE_API_KEY"  # the environment variable that may hold it


@dataclass(frozen=True)
class SetThreads(Job):
    """Run the model on this many CPU threads (None: chosen from its size). Finishes with the
    updated ModelInfo."""

    interactive: ClassVar[bool] = True

    threads: int | None = None


@dataclass(frozen=True)
class CompileStatus(Job):
    """Whether the background compile of the decode step (Load with `compile`) is done:
    finishes at once with the updated ModelInfo (`compiling`, `compiled`, `note`)."""

    interactive: ClassVar[bool] = True


@dataclass(frozen=True)
class Predict(Job):
    """The next-token distribution after `text`, as chart rows. Asking again for the same text
    with other knobs re-applies them to the kept logits: the model is not run again."""

    interactive: ClassVar[bool] = True

    text: str
    sampling: SamplingSettings | None = None
    top_k: int = 10
    watch: str = ""  # a continuation whose probability to report ("" for none)


@dataclass(frozen=True)
class Tokenize(Job):
    """The text's tokens with their ids, labels and character spans."""

    interactive: ClassVar[bool] = True

    text: str


@dataclass(frozen=True)
class Generate(Job):
    """Generate from `prompt` (text, or token ids to continue a branch).

    `forced` = (step, token id) starts by choosing that token where `step` was generated
    (continuing with an alternative), reusing the distribution captured then. Yields
    GenerationStarted, then one GenerationStep per token; finishes with GenerationDone.
    """

    prompt: str | tuple[int, ...]
    max_tokens: int = 64
    sampling: SamplingSettings | None = None
    forced: tuple[GenerationStep, int] | None = None
    top_k: int = 20
    stop: tuple[str, ...] = ()  # end where the text first contains one of these


@dataclass(frozen=True)
class ChatPrompt(Job):
    """`text` as a user turn in the model's chat template, ready for the reply (a model
    without a template refuses, naming why)."""

    interactive: ClassVar[bool] = True

    text: str
    system: str = ""


@dataclass(frozen=True)
class FewShotPreview(Job):
    """The assembled prompt, its next-token chart and the answers' probabilities."""

    interactive: ClassVar[bool] = True

    prompt: FewShotPrompt
    top_k: int = 10


@dataclass(frozen=True)
class Sweep(Job):
    """P(expected answer) for 0..k shots on the current model, then on each of `others`
    (models loaded just for this sweep and let go afterwards). Yields SweepProgress after
    each point (Progress) and SweepSeries when a model is done."""

    prompt: FewShotPrompt
    max_shots: int | None = None
    orders: int = 1
    seed: int = 0
    others: Sequence[str] = ()


@dataclass(frozen=True)
class ScaleRun(Job):
    """One probe (P(answer | prompt) and its rank), or a few-shot sweep, on each of
    `targets`: names, files, folders, servers, a run's folder or a ladder's (each size),
    opened just for this and let go (see tokenscope.lm.scale; results are cached per model
    as it is on disk). A run is also measured at each of its checkpoints (P against
    training tokens). Yields Progress as it goes and a ScaleResult per model; a model
    that cannot be opened gives a ScaleResult with its error and the others go on."""

    needs_model: ClassVar[bool] = False

    targets: Sequence[str]
    probe: Probe | None = None
    prompt: FewShotPrompt | None = None
    max_shots: int | None = None
    use_cache: bool = True
    # Instead of a probe or a sweep: the in-context learning score on this text and the
    # induction heads (tokenscope.lm.scale.measure_icl), and for a run at each checkpoint.
    icl_text: str | None = None
    # Download Hub models (`hf:...`, a training checkpoint `hf:REPO@step1000`) not yet in the
    # cache before measuring them, one after the other, with progress.
    pull: bool = False


# ----- looking inside (tokenscope.lm.inside) -----------------------------------------------------


@dataclass(frozen=True)
class Lens(Job):
    """The logit lens at token `position` of `text` (-1: the next token after it)."""

    interactive: ClassVar[bool] = True

    text: str
    position: int = -1
    top_k: int = 8
    cursor: int | None = None  # a character offset: the token ending there (overrides position)


@dataclass(frozen=True)
class AttentionMap(Job):
    """One layer's attention over `text`: a head, or the heads averaged (head None)."""

    interactive: ClassVar[bool] = True

    text: str
    layer: int = 0
    head: int | None = None


@dataclass(frozen=True)
class Induction(Job):
    """Every head's induction score (a repeated random sequence, seeded)."""

    interactive: ClassVar[bool] = True

    seed: int = 0


@dataclass(frozen=True)
class InContext(Job):
    """In-context learning on `text` (tokenscope.lm.icl.report): the ICL score, every head's
    induction and previous-token score, and the ICL score with the strongest induction head
    silenced."""

    interactive: ClassVar[bool] = True

    text: str
    windows: int = 32
    seed: int = 0


@dataclass(frozen=True)
class SetAblation(Job):
    """Silence exactly these (layer, head) pairs from now on (none: the model as trained)."""

    interactive: ClassVar[bool] = True

    heads: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True)
class Surprisal(Job):
    """Every token of `text` and its surprisal; with `other`, that model's too and where the
    two disagree (loaded for this job and let go). Yields Progress per window."""

    text: str
    other: str = ""
    top_k: int = 3
