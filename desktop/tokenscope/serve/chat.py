"""POST /v1/chat/completions: the messages laid out by the model's own chat template.

The template is the model file's, rendered in the sandbox of tokenscope.lm.formats.
chat_template (time and size bounded); a model without one is refused with a 400 that says
why. The answer has OpenAI's chat shape: a message per choice, `logprobs.content` with
`top_logprobs`, and the same choices, stop sequences, `n`, usage and streaming as
completions (completions.py, choices.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tokenscope.lm.formats.chat_template import render_chat
from tokenscope.serve import logprobs
from tokenscope.serve.choices import Outcome, Settings, choice_settings, walk
from tokenscope.serve.completions import (
    Prompt,
    check_model,
    prompt_of,
    sampling_of,
    sse,
    usage,
)
from tokenscope.serve.errors import Refusal
from tokenscope.serve.schemas import ChatRequest
from tokenscope.serve.state import Served

_OBJECT, _CHUNK = "chat.completion", "chat.completion.chunk"


@dataclass(frozen=True)
class ChatJob:
    id: str
    created: int
    prompt: Prompt
    n: int
    settings: Settings
    wants_logprobs: bool
    include_usage: bool


def prepare(served: Served, request: ChatRequest) -> ChatJob:
    """Render the messages and check what depends on the model. Hold the model's lock."""
    check_model(served, request, 1)
    model = served.model
    if not model.chat_template:
        raise Refusal(
            400,
            f"{served.name} has no chat template (it is not an instruction-tuned model): send "
            "the text to /v1/completions instead",
            "messages",
        )
    tok = served.tokenizer
    text = render_chat(
        model.chat_template,
        [{"role": m.role, "content": m.content} for m in request.messages],
        bos_token=tok.token_text(tok.bos_id) if tok.bos_id is not None else "",
        eos_token=tok.token_text(tok.eos_id) if tok.eos_id is not None else "",
    )
    prompt = prompt_of(served, text)
    room = served.window - len(prompt.ids)
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked > room:
        message = (
            f"the messages take {len(prompt.ids)} of this model's {served.window} tokens: at "
            f"most {room} more can be generated (asked for {asked})"
        )
        raise Refusal(400, message, "max_tokens")
    k = request.top_logprobs or 0
    if k > served.max_logprobs:
        message = (
            f"Requested top_logprobs of {k}, which is greater than max allowed: "
            f"{served.max_logprobs}"
        )
        raise Refusal(400, message, "top_logprobs")
    settings = Settings(asked or room, sampling_of(request), tuple(request.stop), k)
    include = bool(request.stream_options and request.stream_options.include_usage)
    return ChatJob(
        f"chatcmpl-{uuid.uuid4().hex[:24]}",
        int(time.time()),
        prompt,
        request.n,
        settings,
        request.logprobs,
        include,
    )


def _head(served: Served, job: ChatJob, kind: str) -> dict[str, Any]:
    return {"id": job.id, "object": kind, "created": job.created, "model": served.name}


def complete(served: Served, job: ChatJob) -> dict[str, Any]:
    """The whole answer."""
    choices, made = [], 0
    for j in range(job.n):
        outcome, text, content = Outcome(), "", []
        for token in walk(served, job.prompt.ids, choice_settings(job.settings, j), outcome):
            if job.wants_logprobs:
                with served.lock:
                    content.append(
                        logprobs.chat_position(served.tokenizer, token.step, job.settings.top_k)
                    )
            text += token.text
        made += outcome.tokens
        choices.append(
            {
                "index": j,
                "message": {"role": "assistant", "content": text + outcome.tail},
                "logprobs": {"content": content} if job.wants_logprobs else None,
                "finish_reason": outcome.finish_reason,
            }
        )
    head = _head(served, job, _OBJECT)
    return {**head, "choices": choices, "usage": usage(len(job.prompt.ids), made)}


def events(served: Served, job: ChatJob) -> Iterator[bytes]:
    """The answer as server-sent chunks: per choice, the role, a delta per token, and one with
    the finish reason; then the usage (if asked for) and [DONE]."""
    head, made = _head(served, job, _CHUNK), 0
    for j in range(job.n):
        outcome = Outcome()
        yield _chunk(head, j, {"role": "assistant", "content": ""}, None, None)
        for token in walk(served, job.prompt.ids, choice_settings(job.settings, j), outcome):
            part = None
            if job.wants_logprobs:
                with served.lock:
                    entry = logprobs.chat_position(served.tokenizer, token.step, job.settings.top_k)
                part = {"content": [entry]}
            yield _chunk(head, j, {"content": token.text}, part, None)
        made += outcome.tokens
        last = {"content": outcome.tail} if outcome.tail else {}
        yield _chunk(head, j, last, None, outcome.finish_reason)
    if job.include_usage:
        yield sse({**head, "choices": [], "usage": usage(len(job.prompt.ids), made)})
    yield b"data: [DONE]\n\n"


def _chunk(
    head: dict[str, Any], index: int, delta: dict[str, str], part: Any, finish: str | None
) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": part, "finish_reason": finish}
    return sse({**head, "choices": [choice]})
