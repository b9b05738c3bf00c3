"""The request bodies, as Pydantic models: each field's type, range and default.

What depends on the model served (the context length, the vocabulary, --max-logprobs) is
checked in completions.py; everything else is here, and a body that fails comes back as a 400
naming the field (errors.py). Whole numbers are strict (`16.0`, `"16"` and `true` are
mistakes, not 16), numbers must be finite (1e999 reads as infinity: refused), texts must be
text (a lone "\\ud800" is refused, see lm.arguments.unicode_text), and JSON `null` means "the
default", as OpenAI's API reads it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tokenscope.lm.arguments import (
    MAX_REPETITION_PENALTY,
    MAX_SEED,
    MAX_TEMPERATURE,
    lone_surrogate,
)

#: the most prompts one request may carry, and the most choices (prompts x n) it may ask for
MAX_PROMPTS = 256
MAX_N = 16
MAX_CHOICES = 256
MAX_STOP = 4  # stop sequences, as OpenAI's API allows
MAX_STOP_CHARS = 1_000
MAX_TOKENIZE_CHARS = 1_000_000  # for /tokenize and /detokenize (characters, token ids)
MAX_NAME_CHARS = 1_000  # a model's name: it is echoed in the refusal of a wrong one


def _prompts(value: Any, handler: ValidatorFunctionWrapHandler) -> list[str | list[int]]:
    """Every shape OpenAI's API takes for `prompt` (a text, texts, token ids, lists of token
    ids), as a list of prompts; one error for the whole field, not one per union member."""
    if isinstance(value, str) or (
        isinstance(value, list) and value and all(_is_id(v) for v in value)
    ):
        value = [value]  # one prompt
    try:
        prompts: list[str | list[int]] = handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "prompt_type",
            "Input should be text, a list of texts, a non-empty list of token ids or a list "
            "of such lists",
        ) from None
    for n, prompt in enumerate(prompts, 1):
        if isinstance(prompt, str):  # (checked here: inside the union, the error would be lost)
            _check_text(prompt, f" (text {n} of {len(prompts)})" if len(prompts) > 1 else "")
    return prompts


def _text(value: str) -> str:
    """`value` if it is text: a lone surrogate is refused (lm.arguments.unicode_text says why)."""
    _check_text(value, "")
    return value


def _check_text(value: str, which: str) -> None:
    where = lone_surrogate(value)
    if where is not None:
        raise PydanticCustomError(
            "lone_surrogate",
            "Input is not valid text{which}: {where}",
            {"which": which, "where": where},
        )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stops(value: Any, handler: ValidatorFunctionWrapHandler) -> list[str]:
    """`stop` as a list (a single text is one stop sequence)."""
    return handler([value] if isinstance(value, str) else value)


#: after a StrictStr and its length limits: a string that is text (no lone surrogate)
Checked = AfterValidator(_text)
Text = Annotated[StrictStr, Checked]
#: one prompt: a text, or the token ids the model reads (no BOS added unless the model adds one)
OnePrompt = StrictStr | Annotated[list[StrictInt], Field(min_length=1)]
Prompts = Annotated[
    Annotated[list[OnePrompt], Field(min_length=1, max_length=MAX_PROMPTS)],
    WrapValidator(_prompts),
]
Stops = Annotated[
    Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_STOP_CHARS), Checked]],
        Field(max_length=MAX_STOP),
    ],
    WrapValidator(_stops),
]
Whole = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True)]  # (strict still takes a whole number: 1 is 1.0)


class Body(BaseModel):
    """What every request body shares."""

    # Fields this server does not know are ignored, not refused: OpenAI clients, evaluation
    # harnesses and our own RemoteModel send options meant for other servers (`user`,
    # `repeat_penalty` for llama.cpp, `return_token_strs` for vLLM).
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    include_usage: bool = False  # a last chunk with the request's token counts


class Sampling(Body):
    """What completions and chat completions share: the knobs, `n`, stop and streaming."""

    # None: the one model served
    model: Annotated[StrictStr, Field(max_length=MAX_NAME_CHARS), Checked] | None = None
    n: Annotated[Whole, Field(ge=1, le=MAX_N)] = 1  # choices for each prompt
    stop: Stops = []  # cut the text before the first of these; finish_reason "stop"
    stream: bool = False  # server-sent events, one per token
    stream_options: StreamOptions | None = None
    temperature: Annotated[Number, Field(ge=0, le=MAX_TEMPERATURE)] = 1.0
    top_k: Annotated[Whole, Field(ge=-1, le=10**9)] = 0  # 0 or -1 (vLLM's word): off
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    min_p: Annotated[Number, Field(ge=0, le=1)] = 0.0
    repetition_penalty: Annotated[Number, Field(gt=0, le=MAX_REPETITION_PENALTY)] = 1.0
    seed: Annotated[Whole, Field(ge=0, le=MAX_SEED)] | None = None


class CompletionRequest(Sampling):
    """POST /v1/completions (OpenAI's legacy completions, with vLLM's sampling extras)."""

    prompt: Prompts  # one or more prompts: one choice per prompt (and per n), in order
    max_tokens: Annotated[Whole, Field(ge=0)] = 16  # at most the context: completions.py
    # How many alternatives per position, 0..5 in OpenAI's API, up to --max-logprobs here
    # (checked in completions.py); None: no log-probabilities.
    logprobs: Annotated[Whole, Field(ge=0)] | None = None
    echo: bool = False  # the prompt's own tokens too, each with its log-probability


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Annotated[StrictStr, Field(min_length=1, max_length=64), Checked]
    content: Text


class ChatRequest(Sampling):
    """POST /v1/chat/completions: messages laid out by the model's chat template."""

    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1_000)]
    max_tokens: Annotated[Whole, Field(ge=1)] | None = None  # None: as the context allows
    max_completion_tokens: Annotated[Whole, Field(ge=1)] | None = None  # OpenAI's newer name
    logprobs: bool = False  # each token's log-probability
    top_logprobs: Annotated[Whole, Field(ge=0, le=20)] | None = None  # alternatives a token


class TokenizeRequest(Body):
    """POST /tokenize, under vLLM's names or llama.cpp's (`content`, `add_special`)."""

    # (a whole document may be tokenized, beyond the context; not without end: the model is
    # held while it is)
    prompt: Annotated[StrictStr, Field(max_length=MAX_TOKENIZE_CHARS), Checked] = Field(
        validation_alias=AliasChoices("prompt", "content")
    )
    add_special_tokens: bool = Field(
        False, validation_alias=AliasChoices("add_special_tokens", "add_special")
    )  # with the tokens the model puts before a prompt (BOS)


class DetokenizeRequest(Body):
    """POST /detokenize (vLLM's): token ids back to text."""

    tokens: Annotated[list[StrictInt], Field(max_length=MAX_TOKENIZE_CHARS)]
