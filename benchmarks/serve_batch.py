"""Scoring prompts through `tokenscope serve`: one request of N prompts against N requests.

lm-evaluation-harness's log-likelihood requests are prompts echoed without new tokens
(`echo: true, max_tokens: 0`); the server scores the prompts of one request together, padded
to one length and run as one batch (LanguageModel.prompt_logprobs_batch). This measures that
against one request per prompt, on the same server, in one run:

    python benchmarks/serve_batch.py                    # the bundled model and SmolLM2
    python benchmarks/serve_batch.py --prompts 64 --threads 2

Prints a table: prompts a second each way, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve_run import running

SENTENCES = [
    "The capital of France is Paris.",
    "A language model predicts the next token from the tokens before it.",
    "Once upon a time there was a small town by the sea.",
    "The cat sat on the mat and looked out of the window.",
]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def measure(target: str, prompts: int, rounds: int, threads: int) -> tuple[float, float]:
    import tokenscope
    from tokenscope.serve import create_app

    model = tokenscope.load_model(target)
    model.set_threads(threads)
    texts = [SENTENCES[i % len(SENTENCES)] + f" ({i})" for i in range(prompts)]
    body = {"echo": True, "max_tokens": 0, "logprobs": 1}
    together, alone = [], []
    with running(create_app(model, name="m")) as root:
        url = f"{root}/v1/completions"
        post(url, {**body, "prompt": texts[:2]})  # warm
        for _ in range(rounds):
            t = time.perf_counter()
            one = post(url, {**body, "prompt": texts})
            together.append(time.perf_counter() - t)
            t = time.perf_counter()
            each = [post(url, {**body, "prompt": text})["choices"][0] for text in texts]
            alone.append(time.perf_counter() - t)
        for a, b in zip(one["choices"], each, strict=True):  # the same numbers either way
            x = [v for v in a["logprobs"]["token_logprobs"] if v is not None]
            y = [v for v in b["logprobs"]["token_logprobs"] if v is not None]
            assert max(abs(p - q) for p, q in zip(x, y, strict=True)) < 1e-4
    return prompts / statistics.median(together), prompts / statistics.median(alone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["builtin", "smollm2-135m"])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.prompts} prompts of ~15 tokens, echo with max_tokens 0, {args.threads} thread(s)")
    print(f"{'model':<16} {'one request, prompts/s':>24} {'a request each, prompts/s':>27} "
          f"{'ratio':>7}")  # fmt: skip
    for target in args.models:
        batched, single = measure(target, args.prompts, args.rounds, args.threads)
        print(f"{target:<16} {batched:>24.1f} {single:>27.1f} {batched / single:>6.2f}x")


if __name__ == "__main__":
    main()
