"""llama.cpp itself as a reference: the package xllamacpp runs llama.cpp's own HTTP server in
this process, on the same GGUF file, and its top-20 next tokens are compared with ours."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NEAR_TIE = 0.03  # llama.cpp's top two closer than this may come out either way


@dataclass
class Agreement:
    compared: int = 0
    same: int = 0  # prompts with the same top token
    worst: float = 0.0  # largest |dP| over llama.cpp's top 20
    differ: list[str] = field(default_factory=list)  # other top token, not a near tie


def compare_with_llama_cpp(
    path: Path, prompts: Sequence[str], probs: Callable[[str], np.ndarray], n_ctx: int = 1024
) -> Agreement:
    """Our distribution `probs(prompt)` against llama.cpp's top 20 on each prompt (one thread).
    Prompts whose next token llama.cpp withholds (part of a UTF-8 character) are skipped."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = n_ctx
    params.cpuparams.n_threads = 1
    server = xllamacpp.Server(params)
    url = server.listening_address.rstrip("/") + "/completion"
    result = Agreement()
    for prompt in prompts:
        body = {"prompt": prompt, "n_predict": 1, "n_probs": 20, "cache_prompt": False}
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
        if "completion_probabilities" not in answer:
            continue
        result.compared += 1
        top = answer["completion_probabilities"][0]["top_logprobs"]
        mine = probs(prompt)
        if top[0]["id"] == int(mine.argmax()):
            result.same += 1
        elif np.exp(top[0]["logprob"]) - np.exp(top[1]["logprob"]) > NEAR_TIE:
            result.differ.append(prompt[:40])
        result.worst = max(
            result.worst, max(abs(np.exp(t["logprob"]) - mine[t["id"]]) for t in top)
        )
    return result
