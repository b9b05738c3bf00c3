"""Part c of benchmarks/gpu.py: training throughput and MFU of `python -m tokenscope.train`
against a plain PyTorch loop, on random tokens of GPT-2-small's shape.

The trainer reads text, so the random tokens are random characters: a corpus drawn uniformly
from 50,255 code points, each of which the "char" tokenizer makes a token of its own (with
<unk> and the end-of-text token: GPT-2's 50,257). The trainer runs as a person runs it, in its
own process, with `"compile": true`, bf16 autocast and fused AdamW (CUDA); its tokens/s is the
mean over its last 20 steps (its step events), the compile and set-up time from its events.
The plain loop is the same model class, batch, autocast, gradient clipping and fused AdamW,
`torch.compile(model)`, random token ids already on the device, timed over the same steps.

MFU: model FLOPs per token (6 per parameter that multiplies, the tied head included, plus
12 x layers x context x width for attention: ModelConfig.flops_per_token x 3) times tokens/s,
over the GPU's peak dense bf16 FLOP/s (the table below, or --peak-tflops).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Peak dense (no sparsity) bf16 tensor-core TFLOP/s, from the vendor's data sheets; the first
# name contained in the device's name wins, so the more specific names come first.
PEAK_BF16_TFLOPS = [
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
]
FIRST_CHAR = 0x4E00  # CJK ideographs onward: no whitespace or control characters among them


def peak_tflops(device: str, given: float | None) -> tuple[float | None, str]:
    """(peak TFLOP/s or None, where the figure comes from)."""
    if given:
        return given, "--peak-tflops"
    if device == "cpu":
        from tokenscope.train.devices import peak_flops

        threads = torch.get_num_threads()
        return peak_flops(torch.device("cpu"), threads) / 1e12, f"CPU guess, {threads} threads"
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value, f"{key} data sheet"
    return None, f"{name} is not in the table: pass --peak-tflops"


def _shape(smoke: bool) -> tuple[dict, int, int]:
    """(model overrides of the gpt2-small preset, batch size, context)."""
    if smoke:
        return {"n_layer": 2, "n_head": 2, "d_model": 64, "context_length": 64}, 8, 64
    return {}, 16, 1024


def _random_corpus(path: Path, vocab: int, tokens: int) -> None:
    """Random characters, every one of the vocab - 2 used at least once (the char tokenizer
    adds <unk> and the end-of-text token)."""
    codes = [c for c in range(FIRST_CHAR, FIRST_CHAR + vocab + 2048) if not 0xD800 <= c <= 0xDFFF]
    alphabet = np.array(codes[: vocab - 2])
    drawn = np.random.default_rng(0).choice(alphabet, size=tokens)
    text = "".join(map(chr, alphabet)) + "".join(map(chr, drawn))
    path.write_text(text, encoding="utf-8")


def run_trainer(folder: Path, device: str, smoke: bool, steps: int) -> dict:
    """`python -m tokenscope.train` with "compile": true; its numbers from its events."""
    from tokenscope.train.events import (
        DoneEvent,
        ProgressEvent,
        StartEvent,
        StepEvent,
        WarningEvent,
        parse_event,
    )

    model, batch, context = _shape(smoke)
    vocab = 512 if smoke else 50257
    _random_corpus(folder / "random.txt", vocab, max(40 * batch * context, 1_000_000 // 8))
    config = {
        "data": [str(folder / "random.txt")], "out_dir": str(folder / "run"),
        "tokenizer": "char", "preset": "gpt2-small", "model": model, "context": context,
        "steps": steps, "batch_size": batch, "learning_rate": 6e-4, "min_learning_rate": 6e-5,
        "warmup_steps": 5, "beta2": 0.95, "precision": "bf16", "device": device,
        "compile": True, "log_every": 1, "eval_every": 10**9, "eval_batches": 1,
        "sample_every": 10**9, "sample_prompts": [], "checkpoint_every": 10**9,
        "keep_checkpoints": 1, "threads": torch.get_num_threads() if smoke else None,
    }  # fmt: skip
    path = folder / "run.json"
    path.write_text(json.dumps(config))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope.train", "--config", str(path)],
        capture_output=True, text=True, timeout=1200, env=dict(os.environ),
    )  # fmt: skip
    wall = time.perf_counter() - started
    events = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
    done = [e for e in events if isinstance(e, DoneEvent)]
    if proc.returncode != 0 or not done or done[-1].status != "completed":
        why = done[-1].message if done else proc.stderr.strip()[-300:]
        raise RuntimeError(f"the trainer did not complete: {why}")
    start = next(e for e in events if isinstance(e, StartEvent))
    model_stage = next(e for e in events if isinstance(e, ProgressEvent) and e.stage == "model")
    last = [e for e in events if isinstance(e, StepEvent)][-1]
    warnings = [e.message for e in events if isinstance(e, WarningEvent)]
    return {
        "tokens_per_s": last.tokens_per_s,
        "compiled": start.compiled,
        "setup_s": start.time - model_stage.time,  # model built and compiled (the trial step)
        "parameters": start.parameters,
        "wall_s": wall,
        "warnings": [w for w in warnings if "torch.compile" in w],
        "vocab": start.model["vocab_size"],
    }


def plain_loop(device: str, smoke: bool, steps: int, vocab: int) -> dict:
    """The same training, written as short as PyTorch allows."""
    from tokenscope.lm.config import preset
    from tokenscope.lm.model import Transformer

    overrides, batch, context = _shape(smoke)
    cfg = preset("gpt2-small", vocab_size=vocab, **overrides)
    torch.manual_seed(0)
    model = Transformer(cfg).init_weights(seed=0).to(device).train()
    fused = True if device == "cuda" else None
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=fused)  # fmt: skip
    compiled = torch.compile(model)
    data = torch.randint(0, vocab, (steps, batch, context + 1), device=device)

    def step(i: int) -> torch.Tensor:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            logits = compiled(data[i, :, :-1])
        loss = F.cross_entropy(logits.float().view(-1, vocab), data[i, :, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    started = time.perf_counter()
    float(step(0))  # compiles
    compile_s = time.perf_counter() - started
    timed = min(20, steps - 1)
    for i in range(1, steps - timed):
        float(step(i))
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(steps - timed, steps):
        loss = step(i)
    float(loss)  # waits for the GPU
    seconds = time.perf_counter() - started
    return {"tokens_per_s": timed * batch * context / seconds, "setup_s": compile_s}


def report(device: str, smoke: bool, steps: int, given_peak: float | None) -> str:
    from tokenscope.lm.config import preset

    overrides, batch, context = _shape(smoke)
    peak, source = peak_tflops(device, given_peak)
    rows: dict[str, dict | str] = {}
    vocab = 512 if smoke else 50257
    with tempfile.TemporaryDirectory(prefix="tokenscope-gpu-train-") as tmp:
        try:
            rows["tokenscope.train (compile: true)"] = run_trainer(Path(tmp), device, smoke, steps)
        except Exception as e:  # the other row still comes
            rows["tokenscope.train (compile: true)"] = f"failed: {type(e).__name__}: {e}"[:300]
    if device == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    try:
        rows["plain PyTorch loop (torch.compile)"] = plain_loop(device, smoke, steps, vocab)
    except Exception as e:
        rows["plain PyTorch loop (torch.compile)"] = f"failed: {type(e).__name__}: {e}"[:300]
    cfg = preset("gpt2-small", vocab_size=vocab, **overrides)
    flops_per_token = 3 * cfg.flops_per_token(context)
    lines = [
        f"{cfg.n_layer} layers, width {cfg.d_model}, {cfg.n_head} heads, vocabulary {vocab}: "
        f"{cfg.parameter_count() / 1e6:.1f}M parameters; batch {batch} x {context} tokens, "
        f"{steps} steps; {flops_per_token / 1e9:.3f} GFLOP per token; peak "
        + (f"{peak:g} TFLOP/s ({source})" if peak else f"unknown ({source})"),
        "",
        "| loop | tokens/s | MFU | compiled | compile and set-up (s) |",
        "|---|---:|---:|---|---:|",
    ]
    rates = {}
    for label, r in rows.items():
        if isinstance(r, str):
            lines.append(f"| {label} | {r} | - | - | - |")
            continue
        rates[label] = r["tokens_per_s"]
        mfu = f"{flops_per_token * r['tokens_per_s'] / (peak * 1e12):.1%}" if peak else "-"
        compiled = {True: "yes", False: "no (fell back)", None: "yes"}[r.get("compiled")]
        lines.append(f"| {label} | {r['tokens_per_s']:,.0f} | {mfu} | {compiled} "
                     f"| {r['setup_s']:.1f} |")  # fmt: skip
    if len(rates) == 2:
        ours, plain = rates.values()
        lines.append(f"| ratio tokenscope.train / plain | {ours / plain:.2f} | | | |")
    for r in rows.values():
        if isinstance(r, dict) and r.get("warnings"):
            lines += ["", "trainer: " + "; ".join(r["warnings"])]
    return "\n".join(lines)
