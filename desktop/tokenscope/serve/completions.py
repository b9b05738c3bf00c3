"""One completion, whole or streamed, with its log-probabilities.

    with served.lock:
        job = prepare(served, request)    # checked against the model, prompt tokenized
        answer = complete(served, job)    # the whole completion; or, to stream it:
        gen = start(served, job)
    stream = events(served, job, gen)     # takes the lock itself, a step at a time

Streaming equals non-streaming: both walk one Generation and describe each step with the same
functions (logprobs.py); the stream sends what the whole answer would hold, one token an event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tokenscope.lm.sampling import SamplingSettings
from tokenscope.serve import logprobs
from tokenscope.serve.errors import Refusal
from tokenscope.serve.schemas import CompletionRequest
from tokenscope.serve.state import Served

_ID, _OBJECT = "cmpl-tokenscope", "text_completion"


@dataclass(frozen=True)
class Job:
    """A completion request made ready for the model."""

    ids: list[int]  # what the model reads (with the BOS it adds)
    spans: list[tuple[int, int, int]]  # (id, start, end) of the prompt's own tokens
    text: str  # the prompt as text
    max_tokens: int
    k: int  # alternatives per position
    wants_logprobs: bool
    echo: bool
    sampling: SamplingSettings


def prepare(served: Served, request: CompletionRequest) -> Job:
    """Check what depends on the model (its name, --max-logprobs, the context, the vocabulary)
    and tokenize the prompt. Raises Refusal; the engine's own errors come through as they are.
    Hold the model's lock."""
    if request.model is not None and request.model != served.name:
        message = f"this server has no model {request.model!r} (it serves {served.name!r})"
        raise Refusal(404, message, "model")
    if request.logprobs is not None and request.logprobs > served.max_logprobs:
        # vLLM's words: clients (our RemoteModel among them) read the number allowed from them.
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
    ids, spans, text = _prompt(served, request.prompt)
    if len(ids) > served.window:
        message = (
            f"the prompt has {len(ids)} tokens; this model's context is {served.window} tokens"
        )
        raise Refusal(400, message, "prompt")
    sampling = SamplingSettings(
        temperature=request.temperature,
        top_k=max(0, request.top_k),
        top_p=request.top_p,
        min_p=request.min_p,
        repetition_penalty=request.repetition_penalty,
        seed=request.seed,
    )
    return Job(ids, spans, text, request.max_tokens, max(0, request.logprobs or 0),
               request.logprobs is not None, request.echo, sampling)  # fmt: skip


def _prompt(served: Served, prompt: str | list[int]) -> tuple[list[int], list, str]:
    """(the ids the model reads, (id, start, end) of the prompt's own tokens, its text)."""
    model, tok = served.model, served.tokenizer
    if isinstance(prompt, str):
        return model._context_ids(prompt, "prompt"), tok.encode_with_offsets(prompt), prompt
    if any(not 0 <= i < served.vocab_size for i in prompt):
        message = f"a token id is outside the vocabulary (0..{served.vocab_size - 1})"
        raise Refusal(400, message, "prompt")
    spans, pieces, at = [], [tok.token_text(i) for i in prompt], 0
    for i, piece in zip(prompt, pieces, strict=True):
        spans.append((i, at, at + len(piece)))
        at += len(piece)
    return model._context_ids(prompt, "prompt"), spans, "".join(pieces)


def start(served: Served, job: Job) -> Any:
    """The job's Generation (its arguments checked now, so a bad one is a 400 before a stream
    begins). Hold the model's lock."""
    return served.model.generate(
        job.ids, max_tokens=job.max_tokens, sampling=job.sampling, top_k=job.k
    )


def complete(served: Served, job: Job) -> dict[str, Any]:
    """The whole completion. Hold the model's lock."""
    tok = served.tokenizer
    parts, text = [], ""
    if job.echo:
        parts.append(logprobs.echoed(served.model, job.ids, job.spans, job.k))
        text = job.text
    offset = len(text)
    gen = start(served, job)
    for step in gen:
        parts.append(logprobs.generated(tok, step, job.k, offset))
        piece = tok.token_text(step.token_id)
        text += piece
        offset += len(piece)
    choice = {"index": 0, "text": text, "finish_reason": _finish(gen),
              "logprobs": logprobs.merged(parts) if job.wants_logprobs else None}  # fmt: skip
    return {"id": _ID, "object": _OBJECT, "model": served.name, "choices": [choice]}


def events(served: Served, job: Job, gen: Any) -> Iterator[bytes]:
    """The completion as server-sent events: the echoed prompt, one event per token, the
    finish reason, then [DONE]. Starlette runs this in its thread pool, a step at a time.

    Each model call takes the lock on its own, never across a `yield`: a client that reads
    slowly, or went away without a word (this generator is then dropped, not closed), must not
    keep the model from everyone else. Each Generation keeps its own cache, so the steps of two
    streams may interleave."""
    tok = served.tokenizer
    offset = 0
    try:
        if job.echo:
            with served.lock:
                part = logprobs.echoed(served.model, job.ids, job.spans, job.k)
            yield _event(served, job.text, None, part if job.wants_logprobs else None)
            offset = len(job.text)
        while True:
            with served.lock:
                step = next(gen, None)
                if step is None:
                    break
                piece = tok.token_text(step.token_id)
                part = logprobs.generated(tok, step, job.k, offset)
            offset += len(piece)
            yield _event(served, piece, None, part if job.wants_logprobs else None)
        yield _event(served, "", _finish(gen), None)
        yield b"data: [DONE]\n\n"
    finally:
        gen.close()  # (it only drops the generation's state: no model call, no lock)


def _finish(gen: Any) -> str:
    return "stop" if gen.stop_reason == "eos" else "length"


def _event(served: Served, text: str, finish: str | None, part: Any) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": part}
    payload = {"id": _ID, "object": _OBJECT, "model": served.name, "choices": [choice]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
