"""SmolLM2-135M-Instruct (GGUF Q4_1): Tokenscope against transformers and llama.cpp, one table.

    python benchmarks/pretrained.py                  # 1 thread, 3 rounds, 64 new tokens
    python benchmarks/pretrained.py --threads 2 --rounds 5 --new 128

Each tool runs in a fresh process per round (so load time and peak memory are its own), in
alternating order so that machine noise hits all alike. Printed per tool: load time (open the
GGUF file to ready; torch's import excluded, the same for all), batch-1 greedy decode
tokens/s after a 6-token prompt (the first token, which includes the prompt, not counted),
peak resident memory of the process, and the ratio of decode speed to transformers float32.

Tokenscope variants: float32 (the default), bfloat16 and int8 (weight-only, blocks only).
Their accuracy against Tokenscope float32 is measured on the same prompts: the largest
difference in next-token probability and how many 32-token greedy continuations agree.

llama.cpp runs through `llama-cpp-python` when it is installed; otherwise it is reported as
not measured. Needs `tokenscope models pull smollm2-135m`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

PROMPT = "The capital of Indonesia is"
TOOLS = ["tokenscope-f32", "tokenscope-bf16", "tokenscope-int8", "transformers-f32", "llama.cpp"]
ACCURACY_PROMPTS = [
    "The capital of Indonesia is",
    "Ibu kota Indonesia adalah",
    "def fibonacci(n):\n",
    "1, 2, 3, 4, 5,",
    "中国的首都是",
    "English: cat\nFrench: chat\nEnglish: dog\nFrench:",
    "Once upon a time, there was a",
    "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n",
]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _gguf_path() -> str:
    from tokenscope.lm.registry import resolve_known

    return str(resolve_known("smollm2-135m"))


def _worker(tool: str, new: int, threads: int) -> dict:
    """Load with one tool, decode `new` tokens greedily, report times and memory."""
    import torch

    torch.set_num_threads(threads)
    path = _gguf_path()
    if tool.startswith("tokenscope"):
        from tokenscope.lm import GREEDY, load_model

        dtype = {"f32": None, "bf16": "bfloat16", "int8": "int8"}[tool.split("-")[1]]
        started = time.perf_counter()
        model = load_model(path, dtype=dtype)
        load = time.perf_counter() - started
        gen = model.generate(PROMPT, max_tokens=new, sampling=GREEDY)
        steps = iter(gen)
        next(steps)  # the prompt's forward pass
        started = time.perf_counter()
        n = sum(1 for _ in steps)
        rate = n / (time.perf_counter() - started)
        text = gen.text
    elif tool == "transformers-f32":
        import transformers

        folder, name = os.path.split(path)
        started = time.perf_counter()
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        ).eval()
        tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
        load = time.perf_counter() - started
        ids = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)])
        kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=2)
        with torch.inference_mode():
            hf.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
            first = time.perf_counter()
            hf.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
            one = time.perf_counter() - first
            started = time.perf_counter()
            out = hf.generate(ids, max_new_tokens=new, min_new_tokens=new, **kwargs)
            # Same accounting as ours: the prompt's pass (measured alone) is not counted.
            rate = (new - 1) / (time.perf_counter() - started - one)
        text = tok.decode(out[0, ids.shape[1] :])
    else:
        from llama_cpp import Llama

        started = time.perf_counter()
        llm = Llama(model_path=path, n_threads=threads, n_ctx=512, verbose=False)
        load = time.perf_counter() - started
        tokens = llm.tokenize(PROMPT.encode(), add_bos=False)
        produced, started = [], None
        for token in llm.generate(tokens, temp=0.0, top_k=1):
            if started is None:
                started = time.perf_counter()
            produced.append(token)
            if len(produced) == new:
                break
        rate = (new - 1) / (time.perf_counter() - started)
        text = llm.detokenize(produced).decode("utf-8", "replace")
    return {"load_s": load, "tok_s": rate, "peak_mb": _peak_rss_mb(), "text": text[:40]}


def _accuracy(threads: int) -> dict:
    """Each Tokenscope variant against Tokenscope float32 on the same prompts."""
    import torch

    from tokenscope.lm import GREEDY, load_model

    torch.set_num_threads(threads)
    path = _gguf_path()
    base = load_model(path)
    out = {}
    for variant, dtype in (("tokenscope-bf16", "bfloat16"), ("tokenscope-int8", "int8")):
        model = load_model(path, dtype=dtype)
        worst, same = 0.0, 0
        for prompt in ACCURACY_PROMPTS:
            a = base.predict_next_token_probabilities(prompt).vector()
            b = model.predict_next_token_probabilities(prompt).vector()
            worst = max(worst, float(abs(a - b).max()))
            ga = [s.token_id for s in base.generate(prompt, max_tokens=32, sampling=GREEDY)]
            gb = [s.token_id for s in model.generate(prompt, max_tokens=32, sampling=GREEDY)]
            same += ga == gb
        out[variant] = {"max_prob_diff": worst, "greedy_same": same, "of": len(ACCURACY_PROMPTS)}
    return out


def _run(args: list[str]) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        print(f"  {args[1]}: {tail[0]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new", type=int, default=64, help="tokens to generate")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.new, args.threads)))
        return
    if args.accuracy:
        print(json.dumps(_accuracy(args.threads)))
        return

    try:
        import llama_cpp  # noqa: F401

        tools = TOOLS
    except ImportError:
        tools = TOOLS[:-1]
    results: dict[str, list[dict]] = {t: [] for t in tools}
    common = ["--new", str(args.new), "--threads", str(args.threads)]
    for r in range(args.rounds):
        order = tools if r % 2 == 0 else tools[::-1]
        for tool in order:
            result = _run(["--worker", tool, *common])
            if result:
                results[tool].append(result)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    accuracy = _run(["--accuracy", "--threads", str(args.threads)]) or {}

    import torch

    print(
        f"SmolLM2-135M-Instruct Q4_1 GGUF, batch 1, greedy, {args.new} new tokens, "
        f"{args.threads} thread(s), median of {args.rounds} rounds; torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print()
    print(
        "| tool | load (s) | decode (tok/s) | vs transformers | vs llama.cpp | peak RSS (MB) "
        "| accuracy vs f32 |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")

    def median_rate(tool: str) -> float | None:
        runs = results.get(tool) or []
        return statistics.median(r["tok_s"] for r in runs) if runs else None

    base_rate, llama_rate = median_rate("transformers-f32"), median_rate("llama.cpp")
    for tool in TOOLS:
        runs = results.get(tool)
        if not runs:
            why = "not installed" if tool not in tools else "failed"
            print(f"| {tool} | - | - | - | - | - | not measured ({why}) |")
            continue
        rate = statistics.median(r["tok_s"] for r in runs)
        load = statistics.median(r["load_s"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
        vs_llama = f"{rate / llama_rate:.2f}x" if llama_rate else "-"
        acc = accuracy.get(tool)
        note = (
            f"max dP {acc['max_prob_diff']:.3f}, greedy {acc['greedy_same']}/{acc['of']} same"
            if acc
            else ("reference" if tool == "tokenscope-f32" else "")
        )
        print(f"| {tool} | {load:.2f} | {rate:.1f} | {ratio} | {vs_llama} | {peak:.0f} | {note} |")
    print()
    for tool in tools:
        if results[tool]:
            print(f"{tool}: {results[tool][0]['text']!r}")


if __name__ == "__main__":
    main()
