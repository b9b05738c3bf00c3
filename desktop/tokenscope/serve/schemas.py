"""The request bodies, as Pydantic models: each field's type, range and default.

What depends on the model served (the context length, the vocabulary, --max-logprobs) is
checked in completions.py; everything else is here, and a body that fails comes back as a 400
naming the field (errors.py). Whole numbers are strict (`16.0`, `"16"` and `true` are
mistakes, not 16), numbers must be finite, and JSON `null` means "the default", as OpenAI's
API reads it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
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

from tokenscope.lm.arguments import MAX_REPETITION_PENALTY, MAX_SEED, MAX_TEMPERATURE


def _one_prompt(value: Any, handler: ValidatorFunctionWrapHandler) -> str | list[int]:
    # One error for the whole field, not one per member of the union (str | list[int]).
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # ["text"]: how the OpenAI client sends a single prompt
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "prompt_type",
            "Input should be text or a non-empty list of token ids (one prompt a request)",
        ) from None


#: a text, or the token ids the model reads (no BOS added unless the model adds one)
Prompt = Annotated[
    str | Annotated[list[StrictInt], Field(min_length=1)], WrapValidator(_one_prompt)
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


class CompletionRequest(Body):
    """POST /v1/completions (OpenAI's legacy completions, with vLLM's sampling extras)."""

    prompt: Prompt
    model: StrictStr | None = None  # None: the one model served
    max_tokens: Annotated[Whole, Field(ge=0)] = 16  # at most the context: completions.py
    logprobs: Whole | None = None  # how many alternatives per position (None: no log-probs)
    echo: bool = False  # the prompt's own tokens too, each with its log-probability
    stream: bool = False  # server-sent events, one per token
    temperature: Annotated[Number, Field(ge=0, le=MAX_TEMPERATURE)] = 1.0
    top_k: Annotated[Whole, Field(ge=-1, le=10**9)] = 0  # 0 or -1 (vLLM's word): off
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    min_p: Annotated[Number, Field(ge=0, le=1)] = 0.0
    repetition_penalty: Annotated[Number, Field(gt=0, le=MAX_REPETITION_PENALTY)] = 1.0
    seed: Annotated[Whole, Field(ge=0, le=MAX_SEED)] | None = None


class TokenizeRequest(Body):
    """POST /tokenize, under vLLM's names or llama.cpp's (`content`, `add_special`)."""

    prompt: StrictStr = Field(validation_alias=AliasChoices("prompt", "content"))
    add_special_tokens: bool = Field(
        False, validation_alias=AliasChoices("add_special_tokens", "add_special")
    )  # with the tokens the model puts before a prompt (BOS)
