"""Looking inside: the logit lens, attention maps and surprisal against transformers, side by side.

Both run the same randomly initialised GPT-2-small-shaped weights (124M parameters, the size up
to which the window's lens follows every keystroke), float32, on the CPU, alternating so that
machine noise hits both alike.

    python benchmarks/inside.py                  # 1 and 2 threads, 5 rounds

Printed per thread count (median ms, or tokens/s):
- lens: every layer's distribution at the last position of a 64-token prompt (what one
  keystroke costs). Ours: `logit_lens`; transformers: a forward with `output_hidden_states`,
  then ln_f and the head on each hidden state but the last (already normed there).
- attention: every layer's and head's weights for a 64-token prompt. Ours: `attention`
  (the explicit path, run only for this); transformers: `output_attentions` with eager
  attention.
- surprisal: tokens/s scoring a 2,048-token text in 1,024-token windows overlapping by half.
  Ours: `surprisal` (with ranks and top-3 alternatives); transformers: the same windows'
  forward and log-softmax.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

from tokenscope.lm.inside import attention, logit_lens, surprisal


def _decode_module():
    path = Path(__file__).with_name("decode.py")
    spec = importlib.util.spec_from_file_location("decode_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.inference_mode()
def hf_lens(hf, ids: list[int]) -> None:
    out = hf(torch.tensor([ids]), output_hidden_states=True)
    states = torch.stack([h[0, -1] for h in out.hidden_states[:-1]])
    logits = hf.lm_head(hf.transformer.ln_f(states))
    torch.log_softmax(torch.cat([logits, out.logits[0, -1:]]), dim=-1).topk(8)


@torch.inference_mode()
def hf_attention(hf, ids: list[int]) -> None:
    out = hf(torch.tensor([ids]), output_attentions=True)
    torch.stack([a[0] for a in out.attentions]).numpy()


@torch.inference_mode()
def hf_surprisal(hf, ids: list[int], window: int = 1024) -> None:
    stride = window // 2
    begin = 0
    while True:
        chunk = torch.tensor([ids[begin : begin + window]])
        logp = torch.log_softmax(hf(chunk).logits[0, :-1].float(), dim=-1)
        logp.gather(1, chunk[0, 1:, None])
        if begin + window >= len(ids):
            break
        begin += stride


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    decode = _decode_module()
    ours, hf = decode.build_models()
    # Words of the synthetic vocabulary split at spaces, so that a text is its ids.
    from tokenizers.pre_tokenizers import WhitespaceSplit

    from tokenscope.lm import LanguageModel, Tokenizer

    backend = ours.tokenizer.backend
    backend.pre_tokenizer = WhitespaceSplit()
    ours = LanguageModel(ours.transformer, Tokenizer(backend), name=ours.name)
    hf.config._attn_implementation = "eager"  # (attention weights need the written-out path)
    rng = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 50257, (64,), generator=rng).tolist()
    long = torch.randint(0, 50257, (2048,), generator=rng).tolist()
    text = " ".join(f"<{i}>" for i in long)  # the synthetic vocabulary's words
    assert [i for i, _s, _e in ours.tokenizer.encode_with_offsets(text)] == long
    print(f"{'threads':>7}  {'what':<10}  {'Tokenscope':>12}  {'transformers':>12}  ratio")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows = {
            "lens": (lambda: logit_lens(ours, prompt), lambda: hf_lens(hf, prompt)),
            "attention": (lambda: attention(ours, prompt), lambda: hf_attention(hf, prompt)),
        }
        for name, (mine, theirs) in rows.items():
            a, b = [], []
            for _ in range(args.rounds):
                a.append(timed(mine))
                b.append(timed(theirs))
            ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
            print(f"{threads:>7}  {name:<10}  {ma:9.1f} ms  {mb:9.1f} ms  {mb / ma:5.2f}x")
        a, b = [], []
        for _ in range(max(1, args.rounds // 2)):
            a.append(timed(lambda: surprisal(ours, text, top_k=3)))
            b.append(timed(lambda: hf_surprisal(hf, long)))
        ta, tb = len(long) / statistics.median(a), len(long) / statistics.median(b)
        print(f"{threads:>7}  {'surprisal':<10}  {ta:7.0f} tok/s  {tb:7.0f} tok/s  {ta / tb:5.2f}x")


if __name__ == "__main__":
    main()
