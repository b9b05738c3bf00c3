"""Tokenscope on a CUDA GPU: the engine's numbers against the CPU, its speed against Hugging
Face transformers on the same GPU, and training throughput and MFU. One run, a few minutes.

    python benchmarks/gpu.py                      # on a machine with a CUDA GPU
    python benchmarks/gpu.py --peak-tflops 989    # the GPU's peak bf16 dense TFLOP/s, if its
                                                  # name is not in the table below
    python benchmarks/gpu.py --smoke              # everything on the CPU, tiny shapes, about
                                                  # a minute: keeps the script working

Printed, each as a markdown table:

a. Accuracy: `tokenscope.load_model(name, device="cuda", dtype=...)` in float32 and bfloat16
   for the bundled model and SmolLM2-135M, against the same model in float32 on the CPU: the
   largest difference in any next-token probability, top-1 agreement, and identical greedy
   32-token continuations, over a few prompts.
b. Speed, bfloat16, SmolLM2-135M's weights in both: batch-1 greedy decode (128 new tokens)
   and prefill (a 512-token prompt) in tokens/s, Tokenscope against transformers eager and
   transformers with its static cache and compiled decode step (`cache_implementation=
   "static"`: `generate` compiles the step itself, mode "reduce-overhead", fullgraph; its
   prefill column is the forward through `torch.compile(model, fullgraph=True)`).
c. Training, GPT-2-small's shape (12 layers, width 768, 12 heads, context 1024, vocabulary
   50,257) on random tokens, bf16 autocast, fused AdamW, compiled: `python -m tokenscope.train`
   with `"compile": true` against a plain PyTorch loop of the same model in this process;
   tokens/s and MFU (see benchmarks/gpu_training.py).

With --smoke the GPU is the CPU, the models the bundled one (transformers loads it exported as
a GPT-2 folder), torch.compile in (b) traces with the "eager" backend (no code generation),
and (c) trains a 2-layer model of width 64 for a few steps: the figures mean nothing, the code
paths are the ones a GPU run takes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/gpu_training.py

PROMPTS = [
    "The capital of Indonesia is",
    "Once upon a time, there was a",
    "def fibonacci(n):\n",
    "English: cat\nFrench: chat\nEnglish: dog\nFrench:",
    "Water boils at a temperature of",
    "Q: What is 3 + 5?\nA: 8\nQ: What is 7 + 2?\nA:",
]
PASSAGE = (
    "Indonesia is an archipelagic country in Southeast Asia, lying between the Indian and "
    "Pacific oceans. It consists of over 17,000 islands, including Sumatra, Java, Sulawesi and "
    "parts of Borneo and New Guinea. Its capital, Jakarta, is one of the largest cities in the "
    "world, and Java, the most populous island, holds more than half of the people. "
)
DECODE_PROMPT = "The history of the printing press begins"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _failed(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {lines[0][:160] if lines else ''}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; numbers right-aligned."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:,.1f}"
        return str(v)

    right = [bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
             for i in range(len(header))]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


# ----- a. the seed API on the GPU against the CPU ---------------------------------------------


def accuracy(device: str, models: list[str], prompts: list[str], tokens: int) -> str:
    from tokenscope.lm import GREEDY, load_model

    rows: list[list[Any]] = []
    for name in models:
        try:
            base = load_model(name, dtype="float32")
        except Exception as e:  # a model not installed is a row, not the end
            rows.append([name, "-", _failed(e), "-", "-"])
            continue
        reference = []
        for prompt in prompts:
            probs = base.predict_next_token_probabilities(prompt).vector().astype(np.float64)
            greedy = [s.token_id for s in base.generate(prompt, max_tokens=tokens, sampling=GREEDY)]
            reference.append((prompt, probs, greedy))
        for dtype in ("float32", "bfloat16"):
            try:
                model = load_model(name, device=device, dtype=dtype)
                worst, top1, same = 0.0, 0, 0
                for prompt, probs, greedy in reference:
                    mine = model.predict_next_token_probabilities(prompt).vector()
                    worst = max(worst, float(np.abs(mine.astype(np.float64) - probs).max()))
                    top1 += int(mine.argmax()) == int(probs.argmax())
                    steps = model.generate(prompt, max_tokens=tokens, sampling=GREEDY)
                    same += [s.token_id for s in steps] == greedy
                n = len(reference)
                rows.append([name, dtype, worst, f"{top1}/{n}", f"{same}/{n}"])
                del model
            except Exception as e:
                rows.append([name, dtype, _failed(e), "-", "-"])
    header = ["model", f"dtype on {device}", "max abs dP vs CPU float32", "top-1 same",
              f"greedy {tokens} tokens same"]  # fmt: skip
    return table(header, rows)


# ----- b. decode and prefill against transformers ---------------------------------------------


def _hf_folder(smoke: bool, scratch: Path) -> tuple[str, str | None]:
    """(folder, GGUF file name or None) for transformers: SmolLM2's GGUF, or with --smoke the
    bundled model exported as a GPT-2 folder."""
    if smoke:
        from tokenscope.lm import load_model
        from tokenscope.train.export import export_hugging_face

        export_hugging_face(load_model("builtin", dtype="float32"), scratch / "builtin-hf")
        return str(scratch / "builtin-hf"), None
    from tokenscope.lm.registry import resolve_known

    folder, name = os.path.split(str(resolve_known("smollm2-135m")))
    return folder, name


def _tokenscope_speed(name: str, device: str, prefill_ids: list[int], new: int) -> dict:
    from tokenscope.lm import GREEDY, load_model

    model = load_model(name, device=device, dtype="bfloat16")
    list(model.generate(DECODE_PROMPT, max_tokens=4, sampling=GREEDY))  # warm up
    gen = iter(model.generate(DECODE_PROMPT, max_tokens=new, sampling=GREEDY))
    next(gen)  # the prompt's forward pass and the first token
    started = time.perf_counter()
    n = sum(1 for _ in gen)
    _sync(device)
    decode = n / (time.perf_counter() - started)
    ids = torch.tensor([prefill_ids], device=device)
    times = []
    with torch.inference_mode():
        for _ in range(4):  # the first warms up
            cache = model.transformer.new_cache(ids.shape[1] + 1)
            _sync(device)
            t0 = time.perf_counter()
            model.transformer(ids, cache, last_only=True)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return {"decode": decode, "decoded": n + 1, "prefill": len(prefill_ids) / min(times[1:])}


def _load_hf(folder: str, gguf: str | None, device: str) -> Any:
    import transformers

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16}
    if gguf:
        kwargs["gguf_file"] = gguf
        if hasattr(transformers, "GgufConfig"):  # dense weights, as Tokenscope's bfloat16
            kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return model.to(device).eval()


def _hf_speed(hf: Any, device: str, prompt: list[int], prefill_ids: list[int], new: int,
              forward: Any) -> dict:  # fmt: skip
    ids = torch.tensor([prompt], device=device)
    kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=0)

    def generate(n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        out = hf.generate(ids, max_new_tokens=n, min_new_tokens=n, **kwargs)
        _sync(device)
        assert out.shape[1] == ids.shape[1] + n
        return time.perf_counter() - t0

    with torch.inference_mode():
        generate(new)  # warm up (and compile, recording CUDA graphs with the static cache)
        generate(new)
        one = min(generate(1) for _ in range(2))  # the prompt's forward and the first token
        decode = (new - 1) / (generate(new) - one)
        long = torch.tensor([prefill_ids], device=device)
        times = []
        for _ in range(4):
            _sync(device)
            t0 = time.perf_counter()
            forward(long, logits_to_keep=1)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return {"decode": decode, "prefill": len(prefill_ids) / min(times[1:])}


def speed(device: str, smoke: bool, new: int, prefill: int) -> tuple[str, str]:
    import transformers
    from transformers import CompileConfig

    from tokenscope.lm import load_model

    transformers.logging.set_verbosity_error()
    name = "builtin" if smoke else "smollm2-135m"
    tokenizer = load_model(name, dtype="float32").tokenizer
    prompt = tokenizer.encode(DECODE_PROMPT)
    text = PASSAGE
    while len(tokenizer.encode(text)) < prefill:
        text += PASSAGE
    prefill_ids = tokenizer.encode(text)[:prefill]
    results: dict[str, dict | str] = {}
    try:
        results["tokenscope"] = _tokenscope_speed(name, device, prefill_ids, new)
    except Exception as e:
        results["tokenscope"] = _failed(e)
    with tempfile.TemporaryDirectory(prefix="tokenscope-gpu-bench-") as scratch:
        folder, gguf = _hf_folder(smoke, Path(scratch))
        for label in ("transformers eager", "transformers static cache + compile"):
            try:
                hf = _load_hf(folder, gguf, device)
                forward = hf  # what the prefill runs through
                if label != "transformers eager":
                    backend = "eager" if smoke else "inductor"
                    config = CompileConfig(fullgraph=True, backend=backend)
                    config._compile_all_devices = smoke or None  # on the CPU too, with --smoke
                    hf.generation_config.cache_implementation = "static"
                    hf.generation_config.compile_config = config
                    forward = torch.compile(hf, fullgraph=True, backend=backend)
                started = time.perf_counter()
                results[label] = _hf_speed(hf, device, prompt, prefill_ids, new, forward)
                results[label]["wall"] = time.perf_counter() - started
                del hf
            except Exception as e:
                results[label] = _failed(e)
            torch._dynamo.reset()
    ours = results["tokenscope"]
    rows = []
    for label, r in results.items():
        if isinstance(r, str):
            rows.append([label, r, "-", "-", "-"])
            continue
        ratio = [f"{ours[k] / r[k]:.2f}x" if isinstance(ours, dict) else "-"
                 for k in ("decode", "prefill")]  # fmt: skip
        rows.append([label, r["decode"], r["prefill"], *ratio])
    header = ["engine (bfloat16)", f"decode, batch 1, {new} new (tok/s)",
              f"prefill, {prefill}-token prompt (tok/s)", "tokenscope / this, decode",
              "tokenscope / this, prefill"]  # fmt: skip
    note = ""
    if isinstance(ours, dict) and ours["decoded"] < new:
        note = f"(tokenscope stopped at the end-of-text token after {ours['decoded']} tokens)"
    return table(header, rows), note


# ----- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="on the CPU, tiny, about a minute")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak bf16 dense TFLOP/s")
    parser.add_argument("--steps", type=int, help="training steps (default 30; smoke 6)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: a,b,c")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        why = "this torch was built without CUDA" if torch.version.cuda is None else (
            "torch.cuda.is_available() is False")  # fmt: skip
        print(f"benchmarks/gpu.py: no CUDA device is present ({why}); this benchmark needs "
              "one. `--smoke` runs it on the CPU with tiny shapes.", file=sys.stderr)  # fmt: skip
        return 2
    import gpu_training
    from tokenscope.paths import inductor_cache_dir

    # The trainer's process and this one share inductor's disk cache.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache_dir()))
    device = "cpu" if args.smoke else "cuda"
    skip = set(args.skip.split(","))
    if args.smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
        print(f"smoke run on the CPU; torch {torch.__version__}")
    else:
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch "
              f"{torch.__version__}, CUDA {torch.version.cuda}")  # fmt: skip
    began = time.perf_counter()
    if "a" not in skip:
        models = ["builtin"] if args.smoke else ["builtin", "smollm2-135m"]
        prompts, tokens = (PROMPTS[:2], 8) if args.smoke else (PROMPTS, 32)
        print("\n## a. The seed API against the CPU's float32\n")
        print(accuracy(device, models, prompts, tokens), flush=True)
    if "b" not in skip:
        new, prefill = (16, 64) if args.smoke else (128, 512)
        print(f"\n## b. Decode and prefill against transformers, {device}\n")
        text, note = speed(device, args.smoke, new, prefill)
        print(text + (f"\n\n{note}" if note else ""), flush=True)
    if "c" not in skip:
        steps = args.steps or (6 if args.smoke else 30)
        print("\n## c. Training, bf16 autocast, fused AdamW, torch.compile\n")
        print(gpu_training.report(device, args.smoke, steps, args.peak_tflops), flush=True)
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
