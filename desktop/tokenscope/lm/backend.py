"""The one model protocol: whatever answers it can be charted, generated from and scored.

    model = open_model("builtin")                     # or a file, a name, or a server:
    model = open_model("http://127.0.0.1:8080/v1")    # "http://HOST:PORT/v1#NAME"
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    model.get_most_likely_token(dist)                 # " Jak"
    model.capabilities.internals                      # False on a server: no logit lens there

Two implementations: `LanguageModel` (the forward pass is here: float32, bf16 or packed
weights) and `RemoteModel` (llama.cpp, vLLM, SGLang, Ollama or any OpenAI-compatible server,
which list their top k tokens only). Views and the command line never ask which one they
hold; they ask its `capabilities` and label what they show accordingly (a server's
distribution has an "other" share; its scores may be upper bounds). The target string alone
decides which implementation `open_model` builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.tokens import ContinuationScore, GenerationStep, Token, TokenProbability

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel
    from tokenscope.lm.sampling import SamplingSettings
    from tokenscope.lm.tokenizer import Tokenizer


@dataclass(frozen=True)
class Capabilities:
    """What a model can do: the typed questions views ask instead of "is it remote"."""

    kind: str  # "local", or the server: "llama.cpp", "vLLM", "SGLang", "Ollama", ...
    label: str  # what its distributions are: "full vocabulary", "remote · top-20 · raw"
    full_vocabulary: bool  # distributions cover every token (else: top k and an "other" share)
    max_top_k: int  # the most alternatives a token comes with
    can_score: bool  # scores a given continuation (exactly, or as a bound: `exact_scores`)
    exact_scores: bool  # scores are exact values, never upper bounds
    shows_tokens: bool  # tokenize() tells how it splits a text
    internals: bool  # the forward pass is here: lens, attention, ablation, surprisal
    continues_token_ids: bool  # generate() continues from token ids (a branch by its ids)
    chat_template: bool  # chat_prompt() can wrap a prompt as a user turn
    local_weights: bool  # threads, weight modes and compiled decoding are ours to choose


@dataclass(frozen=True)
class ModelFacts:
    """What a model is, as far as it is known (0 or "" where a server does not say)."""

    name: str
    source: str  # where it came from: a file, a folder, a server's address
    parameters: int
    context_length: int
    vocab_size: int
    layers: int = 0
    heads: int = 0
    device: str = ""
    architecture: str = ""
    quantization: str | None = None
    packing: str | None = None  # how the weights are held in memory ("int4 g32 + ...")
    compiled: bool = False
    target: str = ""  # what opens it again, where that differs from what was asked for


@runtime_checkable
class Distribution(Protocol):
    """P(next token | context), or as much of it as the model shows."""

    # Read-only here (properties): a frozen dataclass answers as well as a plain class.
    @property
    def context_ids(self) -> tuple[int, ...]:
        """What the model saw (empty where a server does not say)."""
        ...

    @property
    def dropped_tokens(self) -> int:
        """Prompt tokens cut from the front to fit the window."""
        ...

    def top(self, k: int | None = None) -> list[TokenProbability]: ...

    @property
    def most_likely(self) -> TokenProbability: ...

    @property
    def entropy(self) -> float:
        """Bits; over a top-k list, a lower bound (`entropy_exact` False)."""
        ...

    @property
    def entropy_exact(self) -> bool: ...

    @property
    def other(self) -> float:
        """Raw probability of every token not listed (0 over the full vocabulary)."""
        ...

    @property
    def other_sampled(self) -> float: ...

    @property
    def removed_mass(self) -> float:
        """Raw probability of the tokens the sampling knobs made impossible."""
        ...

    @property
    def sampled_exact(self) -> bool:
        """False where the after-sampling values are estimated from a top-k list."""
        ...

    @property
    def label(self) -> str: ...

    def with_sampling(self, sampling: SamplingSettings) -> Distribution: ...

    def probability_of(self, continuation: str) -> float | None:
        """P(continuation | context); None where this distribution alone cannot tell (a
        token a server did not list)."""
        ...


class GenerationStream(Protocol):
    """Generated tokens one at a time; `close()` stops the work."""

    stop_reason: str | None  # "eos", "stop_string", "max_tokens" or "closed"

    @property
    def prompt_ids(self) -> Sequence[int]:
        """What the model saw before the first new token ([]: unknown)."""
        ...

    @property
    def dropped_prompt_tokens(self) -> int: ...

    def __iter__(self) -> Iterator[GenerationStep]: ...

    def __next__(self) -> GenerationStep: ...

    @property
    def text(self) -> str: ...

    @property
    def flushed(self) -> str:
        """Text after the last step's: bytes of a character left unfinished (as U+FFFD), or
        what a server held back as a possible stop sequence."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ModelBackend(Protocol):
    """A language model as every view and command sees it (see the module notes)."""

    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    def facts(self) -> ModelFacts: ...

    @property
    def tokenizer(self) -> Tokenizer | None:
        """The tokenizer when it is here (None: only the server has it)."""
        ...

    def predict_next_token_probabilities(
        self,
        context: str,
        *,
        sampling: SamplingSettings | None = None,
        top_k: int = 10,
        cancel: CancelToken | None = None,
    ) -> Distribution: ...

    def get_most_likely_token(self, distribution: Distribution) -> str: ...

    def tokenize(self, text: str, *, cancel: CancelToken | None = None) -> list[Token]: ...

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        max_tokens: int = 64,
        sampling: SamplingSettings | None = None,
        stop: Sequence[str] = (),
        top_k: int = 10,
        forced: tuple[GenerationStep, int] | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationStream:
        """Tokens one at a time. `forced` = (step, token id) first chooses that token where
        `step` was generated (continuing a branch with another candidate), reusing the
        distribution captured then; it counts as the first of `max_tokens`."""
        ...

    def score_continuation(
        self, context: str, continuation: str, *, cancel: CancelToken | None = None
    ) -> ContinuationScore: ...

    def chat_prompt(self, prompt: str, *, system: str | None = None) -> str: ...

    def set_threads(self, threads: int | None) -> int:
        """CPU threads for the model (None: chosen from its size); what it now runs with
        (0 where the server decides)."""
        ...

    def compile_decoding(self, progress: Callable[[str, int, int], None] | None = None) -> float:
        """Decode through a compiled step; ValueError where the model cannot."""
        ...

    def internals(self) -> LanguageModel:
        """The model whose forward pass is here (lens, attention, ablation, surprisal);
        ValueError where there is none (see `require_internals`)."""
        ...


def require_internals(model: ModelBackend, what: str) -> LanguageModel:
    """`model.internals()`, or a ValueError saying that `what` needs the forward pass."""
    if not model.capabilities.internals:
        raise ValueError(
            f"{what} needs the model's forward pass: open the model locally ({model.name} "
            f"is on a {model.capabilities.kind} server, which returns only its top tokens)"
        )
    return model.internals()


def is_server(target: str) -> bool:
    """Whether a target names a model on a server ("http://HOST:PORT/v1[#NAME]")."""
    return isinstance(target, str) and target.startswith(("http://", "https://"))


def open_model(
    target: str,
    *,
    dtype: str | None = None,
    api_key: str | None = None,
    api_key_env: str = "TOKENSCOPE_API_KEY",
    progress: Callable[[str, int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> ModelBackend:
    """The model `target` names: "builtin", a known name, a file or folder (loaded here), or
    a server's address (asked over HTTP; `api_key`, else the environment variable
    `api_key_env`, else the system keyring, where it needs one). `progress(stage,
    done, total)` hears where a load is and may raise to stop it."""
    if is_server(target):
        from tokenscope.lm.remote import RemoteModel

        if progress is not None:
            from tokenscope.lm.remote import server_root

            progress(f"connecting to {server_root(target)}", 0, 0)
        return RemoteModel(target, api_key=api_key, api_key_env=api_key_env, cancel=cancel)
    if progress is not None:
        progress("importing PyTorch", 0, 0)
    from tokenscope.lm.loading import load_model

    if progress is not None:
        progress(f"opening {Path(target).name or target}", 0, 0)
    return load_model(target, dtype=dtype, progress=progress)
