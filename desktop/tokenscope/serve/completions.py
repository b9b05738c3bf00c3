"""POST /v1/completions as OpenAI's API defines it, with every log-probability.

    with served.lock:
        job = prepare(served, request)    # checked against the model, prompts tokenized
    answer = complete(served, job)        # the whole answer; or, streamed:
    stream = events(served, job)          # each takes the lock a step at a time

`prompt` may be a text, texts, token ids or lists of token ids: one choice per prompt and per
`n`, numbered in that order. Prompts echoed without new tokens (lm-evaluation-harness's
log-likelihood requests) are scored together in one padded forward pass; choices that
generate run one after another. Streaming equals non-streaming: both walk the same choices
(choices.py) and describe each token with the same functions (logprobs.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tokenscope.lm.sampling import SamplingSettings
from tokenscope.serve import logprobs
from tokenscope.serve.choices import Outcome, Settings, choice_settings, walk
from tokenscope.serve.errors import Refusal
from tokenscope.serve.schemas import MAX_CHOICES, CompletionRequest, Sampling
from tokenscope.serve.state import Served
from tokenscope.serve.strict_json import encoded

_OBJECT = "text_completion"
#: a text longer than this many characters per token of the context cannot fit it: refused
#: before it is tokenized (tokenizing ten megabytes takes a minute)
MAX_CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class Prompt:
    ids: list[int]  # what the model reads (with the BOS it adds)
    spans: list[tuple[int, int, int]]  # (id, start, end) of the prompt's own tokens
    text: str


@dataclass(frozen=True)
class Job:
    """A completion request made ready for the model."""

    id: str
    created: int
    prompts: list[Prompt]
    n: int
    settings: Settings
    k: int  # alternatives per position
    wants_logprobs: bool
    echo: bool
    include_usage: bool


def sampling_of(request: Sampling) -> SamplingSettings:
    return SamplingSettings(
        temperature=request.temperature,
        top_k=max(0, request.top_k),
        top_p=request.top_p,
        min_p=request.min_p,
        repetition_penalty=request.repetition_penalty,
        seed=request.seed,
    )


def check_model(served: Served, request: Sampling, prompts: int) -> None:
    """What every request is checked against: the model's name and the number of choices."""
    if request.model is not None and request.model != served.name:
        message = f"this server has no model {request.model!r} (it serves {served.name!r})"
        raise Refusal(404, message, "model")
    if prompts * request.n > MAX_CHOICES:
        message = (
            f"{prompts} prompt(s) x n={request.n} asks for {prompts * request.n} choices; a "
            f"request may ask for at most {MAX_CHOICES}"
        )
        raise Refusal(400, message, "n")


def prepare(served: Served, request: CompletionRequest) -> Job:
    """Check what depends on the model (its name, --max-logprobs, the context, the vocabulary)
    and tokenize the prompts. Raises Refusal; the engine's own errors come through as they are.
    Hold the model's lock."""
    check_model(served, request, len(request.prompt))
    if request.logprobs is not None and request.logprobs > served.max_logprobs:
        # In the form vLLM uses: clients (our RemoteModel among them) read the limit from it.
        message = (
            f"Requested logprobs of {request.logprobs}, which is greater than max allowed: "
            f"{served.max_logprobs}"
        )
        raise Refusal(400, message, "logprobs")
    if request.max_tokens > served.window:
        message = (
            f"max_tokens should be at most {served.window}, this model's context "
            f"(got {request.max_tokens})"
        )
        raise Refusal(400, message, "max_tokens")
    prompts = [prompt_of(served, p) for p in request.prompt]
    k = request.logprobs or 0
    settings = Settings(request.max_tokens, sampling_of(request), tuple(request.stop), k)
    include = bool(request.stream_options and request.stream_options.include_usage)
    return Job(
        f"cmpl-{uuid.uuid4().hex[:24]}",
        int(time.time()),
        prompts,
        request.n,
        settings,
        k,
        request.logprobs is not None,
        request.echo,
        include,
    )


def prompt_of(served: Served, prompt: str | list[int]) -> Prompt:
    """One prompt made ready: a text tokenized (after a cheap check of its length), or token
    ids checked against the vocabulary."""
    model, tok, window = served.model, served.tokenizer, served.window
    if isinstance(prompt, str):
        if len(prompt) > window * MAX_CHARS_PER_TOKEN:
            message = (
                f"the prompt has {len(prompt):,} characters; this model's context is {window} "
                "tokens, which no text that long fits"
            )
            raise Refusal(400, message, "prompt")
        ids = model._context_ids(prompt, "prompt")
        spans = tok.encode_with_offsets(prompt)
        text = prompt
    else:
        if len(prompt) > window:
            message = f"the prompt has {len(prompt)} tokens; this model's context is {window}"
            raise Refusal(400, message, "prompt")
        if any(not 0 <= i < served.vocab_size for i in prompt):
            message = f"a token id is outside the vocabulary (0..{served.vocab_size - 1})"
            raise Refusal(400, message, "prompt")
        spans, at = [], 0
        for i in prompt:
            piece = tok.token_text(i)
            spans.append((i, at, at + len(piece)))
            at += len(piece)
        ids, text = model._context_ids(prompt, "prompt"), "".join(tok.token_text(i) for i in prompt)
    if len(ids) > window:
        message = f"the prompt has {len(ids)} tokens; this model's context is {window} tokens"
        raise Refusal(400, message, "prompt")
    return Prompt(ids, spans, text)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _head(served: Served, job: Job) -> dict[str, Any]:
    return {"id": job.id, "object": _OBJECT, "created": job.created, "model": served.name}


def _echoes(served: Served, job: Job) -> list[logprobs.Part]:
    """The prompts' own log-probabilities, all prompts in one batch."""
    if not job.echo:
        return [logprobs.merged([]) for _ in job.prompts]
    with served.lock:
        return logprobs.echoed(served.model, [(p.ids, p.spans) for p in job.prompts], job.k)


def complete(served: Served, job: Job) -> dict[str, Any]:
    """The whole answer."""
    echoes, choices, made = _echoes(served, job), [], 0
    for p, (prompt, echo) in enumerate(zip(job.prompts, echoes, strict=True)):
        for j in range(job.n):
            outcome = Outcome()
            parts, text = [echo], prompt.text if job.echo else ""
            offset = len(text)
            for token in walk(served, prompt.ids, choice_settings(job.settings, j), outcome):
                with served.lock:
                    parts.append(logprobs.generated(served.tokenizer, token.step, job.k, offset))
                text += token.text
                offset += len(token.own)  # where the next token stands, held-back text or not
            text += outcome.tail
            made += outcome.tokens
            choices.append(
                {
                    "index": p * job.n + j,
                    "text": text,
                    "finish_reason": outcome.finish_reason,
                    "stop_reason": outcome.stop_sequence,
                    "logprobs": logprobs.merged(parts) if job.wants_logprobs else None,
                }
            )
    prompt_tokens = sum(len(p.ids) for p in job.prompts)
    return {**_head(served, job), "choices": choices, "usage": usage(prompt_tokens, made)}


def events(served: Served, job: Job) -> Iterator[bytes]:
    """The answer as server-sent events: per choice, in order, the echoed prompt, one event
    per token and one with the finish reason; then the usage (if asked for) and [DONE].
    Starlette runs this in its thread pool, a step at a time; the lock is never held across
    a `yield`."""
    head, made = _head(served, job), 0
    for p, (prompt, echo) in enumerate(zip(job.prompts, _echoes(served, job), strict=True)):
        for j in range(job.n):
            index, outcome = p * job.n + j, Outcome()
            offset = 0
            if job.echo:
                yield _event(head, index, prompt.text, None, echo if job.wants_logprobs else None)
                offset = len(prompt.text)
            for token in walk(served, prompt.ids, choice_settings(job.settings, j), outcome):
                with served.lock:
                    part = logprobs.generated(served.tokenizer, token.step, job.k, offset)
                offset += len(token.own)
                yield _event(head, index, token.text, None, part if job.wants_logprobs else None)
            made += outcome.tokens
            yield _event(head, index, outcome.tail, outcome.finish_reason, None,
                         outcome.stop_sequence)  # fmt: skip
    if job.include_usage:
        prompt_tokens = sum(len(p.ids) for p in job.prompts)
        yield sse({**head, "choices": [], "usage": usage(prompt_tokens, made)})
    yield b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event, strict JSON (strict_json.py) as the whole answers are."""
    return b"data: " + encoded(payload) + b"\n\n"


def _event(
    head: dict[str, Any],
    index: int,
    text: str,
    finish: str | None,
    part: Any,
    stop_sequence: str | None = None,
) -> bytes:
    choice = {"index": index, "text": text, "finish_reason": finish, "logprobs": part}
    if finish is not None:  # (as vLLM: the stop sequence that ended it, or null)
        choice["stop_reason"] = stop_sequence
    return sse({**head, "choices": [choice]})
