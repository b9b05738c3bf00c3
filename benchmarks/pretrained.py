"""Real GGUF models: Tokenscope's weight modes side by side with llama.cpp, in one run.

    python benchmarks/pretrained.py                       # SmolLM2-135M Q4_1, 1 and 2 threads
    python benchmarks/pretrained.py --rounds 5 --new 128
    python benchmarks/pretrained.py --tools auto,compiled,llama.cpp --threads 1
    python benchmarks/pretrained.py --model gemma3-270m --tools auto,llama.cpp --threads 1
    python benchmarks/pretrained.py --model llama1b-q4_k_m --tools auto,llama.cpp --rounds 1
    python benchmarks/pretrained.py --model llama1b-q4_0 --tools auto,llama.cpp --rounds 1
    python benchmarks/pretrained.py --model qwen1.5b-shapes --tools auto,llama.cpp --rounds 1

Every (tool, thread count) runs in a fresh process per round, in alternating order, so load
time and peak memory are its own and machine noise hits all alike. Printed per tool: load
time (open the file to ready; imports excluded), prefill tokens/s on a 512-token prompt (a
passage repeated, cut to exactly 512 ids of the file's tokenizer, BOS first where the model
wants one; the same ids go to llama.cpp, whose /completion takes a list of ids as they are),
batch-1 greedy decode tokens/s after a 6-token prompt (the first token, which includes the
prompt, not counted), peak resident memory of the whole process, the part of it the load
added ("model": peak minus the memory before loading; Python, torch and the tokenizer
library alone take ~220 MB), and prefill and decode speed each as a ratio to llama.cpp in
the same run.

Tools: tokenscope-f32 (every weight float32, the reference numbers), tokenscope-auto (the
default: 4-bit blocks as int4 groups, the rest float16, see tokenscope.lm.formats.
gguf_packing), tokenscope-compiled (auto plus the compiled decode step; its compile or
disk-cache load is reported, not counted in the load), tokenscope-bf16, tokenscope-int8,
transformers-f32 (SmolLM2 only) and llama.cpp through the package `xllamacpp` (its own HTTP
server in-process; decode and prefill speeds are llama.cpp's own timings).

Models: smollm2 (SmolLM2-135M-Instruct Q4_1) and gemma3-270m (Gemma 3 270M Q4_K_M), the
known models as `tokenscope models pull` installs them; and three random-weight files that
benchmarks/random_gguf.py writes once into the benchmark cache folder
(~/.cache/tokenscope/benchmarks) with the `gguf` package, SmolLM2's tokenizer padded to
their vocabulary:

    qwen1.5b-shapes  Qwen2.5-1.5B's shapes (28 layers, width 1536, FFN 8960, 12 heads, 2 KV
                     heads, tied vocabulary of 151,936), every matrix Q4_0 (~0.8 GB)
    llama1b-q4_0     Llama 3.2 1B's shapes (16 layers, width 2048, FFN 8192, 32 heads, 8 KV
                     heads of 64, tied vocabulary of 128,256, RoPE base 500,000, plain RoPE):
                     every block matrix Q4_0, the tied embedding Q8_0 (~0.8 GB)
    llama1b-q4_k_m   the same shapes in llama.cpp's Q4_K_M mix: Q4_K, with attn_v and
                     ffn_down Q6_K in llama.cpp's `use_more_bits` layers (0, 1, 4, 7, 10, 13,
                     14, 15), the tied embedding Q6_K (~0.8 GB)

Accuracy (real models only; the random ones print speed and memory), on a varied prompt
set, against Tokenscope float32: the largest difference in any next-token probability, how
many top-1 tokens agree, and how many 32-token greedy continuations are identical;
llama.cpp's top-1 and its top-20 probabilities likewise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROMPT = "The capital of Indonesia is"
TOOLS = ["f32", "auto", "compiled", "bf16", "int8", "transformers", "llama.cpp"]
DTYPES = {"f32": "float32", "auto": "auto", "compiled": "auto", "bf16": "bfloat16", "int8": "int8"}
ACCURACY_PROMPTS = [
    "The capital of Indonesia is",
    "Ibu kota Indonesia adalah",
    "def fibonacci(n):\n",
    "1, 2, 3, 4, 5,",
    "中国的首都是",
    "English: cat\nFrench: chat\nEnglish: dog\nFrench:",
    "Once upon a time, there was a",
    "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at a temperature of",
    "SELECT name FROM users WHERE",
    "Q: What is 3 + 5?\nA: 8\nQ: What is 7 + 2?\nA:",
    "The quick brown fox jumps over the",
]
PASSAGE = (
    "Indonesia is an archipelagic country in Southeast Asia, lying between the Indian and "
    "Pacific oceans. It consists of over 17,000 islands, including Sumatra, Java, Sulawesi, and "
    "parts of Borneo and New Guinea. Indonesia is the world's largest archipelagic state and "
    "the 14th-largest country by area, at 1,904,569 square kilometres. With over 280 million "
    "people, Indonesia is the world's fourth-most-populous country and the most populous "
    "Muslim-majority country. Java, the world's most populous island, is home to more than half "
    "of the country's population. Indonesia is a presidential republic with an elected "
    "legislature. It has 38 provinces, of which nine have special autonomous status. The "
    "country's capital, Jakarta, is the world's second-most-populous urban area. Indonesia "
    "shares land borders with Papua New Guinea, East Timor, and the eastern part of Malaysia, "
    "as well as maritime borders with Singapore, Vietnam, Thailand, the Philippines, Australia, "
    "Palau, and India. The capital of Indonesia is"
)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# name -> the known model's name, or (file name, shape table, mix, embedding type) for the
# random-weight files written into the benchmark cache folder (see random_gguf).
REAL_MODELS = {"smollm2": "smollm2-135m", "gemma3-270m": "gemma3-270m"}
RANDOM_MODELS = {
    "qwen1.5b-shapes": ("qwen2.5-1.5b-shapes-random.Q4_0.gguf", "QWEN_1_5B", "q4_0", "Q4_0"),
    "llama1b-q4_0": ("llama3.2-1b-shapes-random.Q4_0.gguf", "LLAMA_1B", "q4_0", "Q8_0"),
    "llama1b-q4_k_m": ("llama3.2-1b-shapes-random.Q4_K_M.gguf", "LLAMA_1B", "q4_k_m", "Q6_K"),
}
MODELS = [*REAL_MODELS, *RANDOM_MODELS]
PREFILL_TOKENS = 512


def _model_path(model: str) -> str:
    from tokenscope.lm.registry import resolve_known

    if model in REAL_MODELS:
        return str(resolve_known(REAL_MODELS[model]))
    from gguf import GGMLQuantizationType

    import random_gguf

    name, shapes, mix, embedding = RANDOM_MODELS[model]
    path = random_gguf.cached(
        _cache_folder() / name,
        getattr(random_gguf, shapes),
        mix,
        resolve_known("smollm2-135m"),  # its tokenizer, padded to the vocabulary
        embedding=GGMLQuantizationType[embedding],
    )
    return str(path)


def _cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokenscope" / "benchmarks"


def _prefill_ids(path: str) -> list[int]:
    """Exactly PREFILL_TOKENS ids of the passage, repeated, in the file's own tokenizer (with
    its BOS first where the model wants one): both tools prefill the very same ids."""
    from tokenscope.lm.formats.gguf_file import GGUFFile
    from tokenscope.lm.formats.gguf_tokenizer import tokenizer_from_gguf

    with GGUFFile(path) as gf:
        tokenizer, add_bos = tokenizer_from_gguf(gf.metadata, source=path)
    ids = [tokenizer.bos_id] if add_bos and tokenizer.bos_id is not None else []
    while len(ids) < PREFILL_TOKENS:
        ids += tokenizer.encode(PASSAGE + "\n\n")
    return ids[:PREFILL_TOKENS]


# ----- one tool, one process ------------------------------------------------------------------


def _tokenscope(tool: str, path: str, new: int, prefill_ids: list[int]) -> dict:
    import torch

    from tokenscope.lm import GREEDY, load_model

    before = _status_mb("VmRSS")
    started = time.perf_counter()
    model = load_model(path, dtype=DTYPES[tool])
    load = time.perf_counter() - started
    extra = {}
    if tool == "compiled":
        extra["compile_s"] = model.compile_decoding()
    # Prefill: the prompt's forward pass (a fresh cache each time), best of 2.
    ids = torch.tensor([prefill_ids])
    prefill = []
    with torch.inference_mode():
        for _ in range(2):
            cache = model.transformer.new_cache(ids.shape[1] + 1)
            t0 = time.perf_counter()
            model.transformer(ids, cache, last_only=True)
            prefill.append(ids.shape[1] / (time.perf_counter() - t0))
    gen = model.generate(PROMPT, max_tokens=new, sampling=GREEDY)
    steps = iter(gen)
    next(steps)  # the prompt's forward pass
    started = time.perf_counter()
    n = sum(1 for _ in steps)
    rate = n / (time.perf_counter() - started)
    return {"load_s": load, "tok_s": rate, "prefill_tok_s": max(prefill), "before_mb": before,
            "text": gen.text[:40], **extra}  # fmt: skip


def _transformers(path: str, new: int, prefill_ids: list[int]) -> dict:
    import torch
    import transformers

    folder, name = os.path.split(path)
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32
    ).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    load = time.perf_counter() - started
    ids = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)])
    passage = torch.tensor([prefill_ids])
    kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=2)
    with torch.inference_mode():
        t0 = time.perf_counter()
        hf(passage)
        prefill = passage.shape[1] / (time.perf_counter() - t0)
        hf.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
        first = time.perf_counter()
        hf.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
        one = time.perf_counter() - first
        started = time.perf_counter()
        out = hf.generate(ids, max_new_tokens=new, min_new_tokens=new, **kwargs)
        rate = (new - 1) / (time.perf_counter() - started - one)
    text = tok.decode(out[0, ids.shape[1] :])
    return {"load_s": load, "tok_s": rate, "prefill_tok_s": prefill, "before_mb": before,
            "text": text[:40]}  # fmt: skip


class LlamaServer:
    """llama.cpp's server in this process (xllamacpp), spoken to over loopback HTTP."""

    def __init__(self, path: str, threads: int, n_ctx: int = 1024) -> None:
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = path
        p.n_ctx = n_ctx
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        self.server = xllamacpp.Server(p)
        self.url = self.server.listening_address.rstrip("/")

    def complete(self, body: dict) -> dict:
        req = urllib.request.Request(
            self.url + "/completion",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=600) as response:
            return json.loads(response.read())


def _llama(path: str, new: int, threads: int, prefill_ids: list[int]) -> dict:
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    server = LlamaServer(path, threads)
    load = time.perf_counter() - started
    # Token ids as the prompt: llama.cpp takes them as they are (no BOS added).
    passage = server.complete({"prompt": prefill_ids, "n_predict": 1, "cache_prompt": False})
    if passage["timings"]["prompt_n"] != len(prefill_ids):
        raise RuntimeError(f"llama.cpp prefilled {passage['timings']['prompt_n']} tokens, "
                           f"not the {len(prefill_ids)} sent")  # fmt: skip
    out = server.complete({"prompt": PROMPT, "n_predict": new, "temperature": 0, "top_k": 1,
                           "cache_prompt": False, "ignore_eos": True})  # fmt: skip
    return {"load_s": load, "tok_s": out["timings"]["predicted_per_second"],
            "prefill_tok_s": passage["timings"]["prompt_per_second"], "before_mb": before,
            "text": out["content"][:40]}  # fmt: skip


def _worker(tool: str, model: str, new: int, threads: int, ids_file: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    path = _model_path(model)
    ids = json.loads(Path(ids_file).read_text())
    if tool == "transformers":
        result = _transformers(path, new, ids)
    elif tool == "llama.cpp":
        result = _llama(path, new, threads, ids)
    else:
        result = _tokenscope(tool, path, new, ids)
    result["peak_mb"] = _status_mb("VmHWM")
    result["model_mb"] = result["peak_mb"] - result.pop("before_mb")
    return result


# ----- accuracy -------------------------------------------------------------------------------


def _accuracy(model: str, tools: list[str]) -> dict:
    import numpy as np
    import torch

    from tokenscope.lm import GREEDY, load_model

    torch.set_num_threads(1)
    path = _model_path(model)
    base = load_model(path, dtype="float32")
    reference = {}
    for prompt in ACCURACY_PROMPTS:
        probs = np.asarray(base.predict_next_token_probabilities(prompt).vector(), dtype=np.float64)
        greedy = [s.token_id for s in base.generate(prompt, max_tokens=32, sampling=GREEDY)]
        reference[prompt] = (probs, greedy)
    out = {}
    for tool in tools:
        if tool in ("f32", "transformers"):
            continue
        worst, top1, same = 0.0, 0, 0
        if tool == "llama.cpp":
            server = LlamaServer(path, 1)
            for prompt, (probs, greedy) in reference.items():
                r = server.complete({"prompt": prompt, "n_predict": 1, "n_probs": 20,
                                     "cache_prompt": False, "temperature": 0})  # fmt: skip
                if "completion_probabilities" not in r:  # part of a UTF-8 character
                    continue
                top = r["completion_probabilities"][0]["top_logprobs"]
                top1 += top[0]["id"] == int(probs.argmax())
                for entry in top:
                    worst = max(worst, abs(np.exp(entry["logprob"]) - probs[entry["id"]]))
                g = server.complete({"prompt": prompt, "n_predict": 32, "temperature": 0,
                                     "top_k": 1, "cache_prompt": False,
                                     "return_tokens": True})  # fmt: skip
                same += g.get("tokens", [])[: len(greedy)] == greedy[: len(g.get("tokens", []))]
            out[tool] = {"max_prob_diff": worst, "top1_same": top1, "greedy_same": same,
                         "of": len(reference), "note": "over llama.cpp's top 20"}  # fmt: skip
            continue
        m = load_model(path, dtype=DTYPES[tool])
        if tool == "compiled":
            m.compile_decoding()
        for prompt, (probs, greedy) in reference.items():
            mine = np.asarray(m.predict_next_token_probabilities(prompt).vector(), np.float64)
            worst = max(worst, float(np.abs(mine - probs).max()))
            top1 += int(mine.argmax()) == int(probs.argmax())
            ids = [s.token_id for s in m.generate(prompt, max_tokens=32, sampling=GREEDY)]
            same += ids == greedy
        out[tool] = {"max_prob_diff": worst, "top1_same": top1, "greedy_same": same,
                     "of": len(reference)}  # fmt: skip
    return out


# ----- driver ---------------------------------------------------------------------------------


def _run(args: list[str], env: dict[str, str] | None = None) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=3600, env=env
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        print(f"  {' '.join(args)}: {tail[0]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="smollm2")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new", type=int, default=64, help="tokens to generate")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated; see above")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)  # the prefill ids (a JSON file)
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; choose from {TOOLS}")
    if args.model != "smollm2" and "transformers" in tools:
        tools.remove("transformers")
    threads = [int(t) for t in args.threads.split(",")]
    if args.worker:
        print(json.dumps(_worker(args.worker, args.model, args.new, threads[0], args.ids)))
        return
    if args.accuracy:
        print(json.dumps(_accuracy(args.model, tools)))
        return

    path = _model_path(args.model)  # written once here for the random models
    ids_file = _cache_folder() / f"prefill-{args.model}.json"
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text(json.dumps(_prefill_ids(path)))
    model_args = ["--model", args.model, "--ids", str(ids_file)]
    first_load = None
    if {"auto", "compiled"} & set(tools):
        # The first load ever packs the file and keeps the result (lm.formats.packed_cache):
        # measured once with an empty cache folder of its own; every timed round maps it.
        import tempfile

        with tempfile.TemporaryDirectory() as home:
            fresh = _run(["--worker", "auto", *model_args, "--new", "2", "--threads", "1"],
                         env={**os.environ, "TOKENSCOPE_HOME": home})  # fmt: skip
        first_load = fresh and fresh["load_s"]
        _run(["--worker", "auto", *model_args, "--new", "2", "--threads", "1"])
    if "compiled" in tools:  # fill inductor's disk cache once, outside the timed rounds
        _run(["--worker", "compiled", *model_args, "--new", "2", "--threads", "1"])
    results: dict[tuple[str, int], list[dict]] = {(t, n): [] for t in tools for n in threads}
    for r in range(args.rounds):
        order = list(results) if r % 2 == 0 else list(results)[::-1]
        for tool, n in order:
            common = [*model_args, "--new", str(args.new), "--threads", str(n)]
            result = _run(["--worker", tool, *common])
            if result:
                results[(tool, n)].append(result)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    accuracy = {}
    if not args.no_accuracy and args.model in REAL_MODELS:
        accuracy = _run(["--accuracy", "--model", args.model, "--tools", ",".join(tools)]) or {}

    import torch

    size_mb = os.path.getsize(path) / 2**20
    name = Path(path).name
    capability = torch.backends.cpu.get_cpu_capability()
    print(
        f"{name} ({size_mb:.0f} MB), batch 1, prefill {PREFILL_TOKENS} tokens, greedy decode "
        f"of {args.new} new tokens, median of {args.rounds} rounds; torch {torch.__version__} "
        f"({capability}), {platform.machine()}, {os.cpu_count()} cores"
    )
    print()
    print(
        "| tool | threads | load (s) | prefill (tok/s) | vs llama.cpp | decode (tok/s) "
        "| vs llama.cpp | peak RSS (MB) | model (MB) | model / file |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def med(tool: str, n: int, key: str) -> float | None:
        runs = results.get((tool, n)) or []
        values = [r[key] for r in runs if key in r]
        return statistics.median(values) if values else None

    def vs(tool: str, n: int, key: str) -> str:
        mine, llama = med(tool, n, key), med("llama.cpp", n, key)
        return f"{mine / llama:.2f}x" if mine and llama else "-"

    for tool, n in results:
        if not results[(tool, n)]:
            print(f"| {tool} | {n} | - | - | - | - | - | - | - | failed |")
            continue
        model_mb = med(tool, n, "model_mb") or 0.0
        print(
            f"| {tool} | {n} | {med(tool, n, 'load_s'):.2f} | {med(tool, n, 'prefill_tok_s'):.0f} "
            f"| {vs(tool, n, 'prefill_tok_s')} | {med(tool, n, 'tok_s'):.1f} "
            f"| {vs(tool, n, 'tok_s')} | {med(tool, n, 'peak_mb'):.0f} | {model_mb:.0f} "
            f"| {model_mb / size_mb:.1f}x |"
        )
    if first_load:
        print(f"\nfirst load ever (packing, writing the packed cache): {first_load:.2f} s; "
              "every load above maps the cache")  # fmt: skip
    compile_s = [r["compile_s"] for (t, _), rs in results.items() if t == "compiled" for r in rs]
    if compile_s:
        print(f"\ncompiled: warming the step took {statistics.median(compile_s):.1f} s "
              "(inductor's disk cache filled beforehand)")  # fmt: skip
    if accuracy:
        print("\n| tool | max abs dP vs float32 | top-1 same | greedy 32 tokens same |")
        print("|---|---:|---:|---:|")
        for tool, a in accuracy.items():
            note = f" ({a['note']})" if "note" in a else ""
            print(f"| {tool} | {a['max_prob_diff']:.4f}{note} | {a['top1_same']}/{a['of']} "
                  f"| {a['greedy_same']}/{a['of']} |")  # fmt: skip
    print()
    for (tool, n), runs in results.items():
        if runs and n == threads[0]:
            print(f"{tool}: {runs[0]['text']!r}")


if __name__ == "__main__":
    main()
