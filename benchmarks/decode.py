"""Decode speed: Tokenscope's engine against Hugging Face transformers, side by side.

Both run the same randomly initialised GPT-2-small-shaped weights (124M parameters), float32,
batch 1, greedy, on the CPU, in alternating runs so that machine noise hits both alike.

    python benchmarks/decode.py                 # 1 thread (the default), 3 rounds
    python benchmarks/decode.py --threads 2 --rounds 5

Printed: tokens/s of greedy decoding (a 64-token prompt, then --new tokens) through
`LanguageModel.generate` (which also records top-10 alternatives and entropy per step) and
through `transformers` `generate`; and the median time of one next-token prediction for a
64-token prompt (a fresh prompt each time, so no cache is reused).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import transformers
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers.models import WordLevel

from tokenscope.lm import GREEDY, LanguageModel, Tokenizer, Transformer
from tokenscope.lm.hf_config import config_from_hf
from tokenscope.lm.hf_names import convert_state_dict


def build_models() -> tuple[LanguageModel, transformers.GPT2LMHeadModel]:
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    hf_config = hf.config.to_dict()
    config = config_from_hf(hf_config, name="gpt2-small-random")
    with torch.device("meta"):
        ours = Transformer(config)
    state = convert_state_dict(hf.state_dict(), "gpt2", config, set(ours.state_dict()))
    ours.load_state_dict(state, assign=True, strict=True)
    # Random weights produce arbitrary ids, so every id needs a token: a synthetic vocabulary.
    vocab = {f"<{i}>": i for i in range(config.vocab_size)}
    tokenizer = Tokenizer(BackendTokenizer(WordLevel(vocab, unk_token="<0>")))
    return LanguageModel(ours, tokenizer, name="gpt2-small-random"), hf


def ours_decode(model: LanguageModel, prompt: list[int], new: int) -> float:
    started = time.perf_counter()
    gen = model.generate(prompt, max_tokens=new, sampling=GREEDY)
    n = sum(1 for _ in gen)
    assert n == new, (n, gen.stop_reason)
    return new / (time.perf_counter() - started)


@torch.inference_mode()
def hf_decode(hf: transformers.GPT2LMHeadModel, prompt: list[int], new: int) -> float:
    ids = torch.tensor([prompt])
    started = time.perf_counter()
    out = hf.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )
    assert out.shape[1] == len(prompt) + new
    return new / (time.perf_counter() - started)


def ours_predict(model: LanguageModel, prompt: list[int]) -> float:
    model.forget_cache()
    started = time.perf_counter()
    dist = model.predict_next_token_probabilities(prompt)
    dist.most_likely  # noqa: B018  the work a caller does with the result
    return time.perf_counter() - started


@torch.inference_mode()
def hf_predict(hf: transformers.GPT2LMHeadModel, prompt: list[int]) -> float:
    started = time.perf_counter()
    # The last position's logits only, as Tokenscope computes them: a fair comparison.
    logits = hf(torch.tensor([prompt]), logits_to_keep=1).logits[0, -1]
    probs = torch.softmax(logits, dim=-1)
    torch.topk(probs, 10)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new", type=int, default=128, help="tokens generated per run")
    parser.add_argument("--predictions", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()

    model, hf = build_models()
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, model.config.vocab_size, (64,), generator=gen).tolist()

    # Same weights, same greedy choice: check before timing anything.
    check = model.generate(prompt, max_tokens=8, sampling=GREEDY)
    ours_ids = [s.token_id for s in check]
    with torch.inference_mode():
        hf_ids = hf.generate(
            torch.tensor([prompt]), max_new_tokens=8, do_sample=False, pad_token_id=0
        )[0, 64:].tolist()
    assert ours_ids == hf_ids, f"greedy continuations differ: {ours_ids} vs {hf_ids}"

    ours_decode(model, prompt, 8)  # warm-up
    hf_decode(hf, prompt, 8)
    ours_rates, hf_rates = [], []
    for i in range(args.rounds):  # who goes first alternates, so drift hits both alike
        if i % 2:
            hf_rates.append(hf_decode(hf, prompt, args.new))
            ours_rates.append(ours_decode(model, prompt, args.new))
        else:
            ours_rates.append(ours_decode(model, prompt, args.new))
            hf_rates.append(hf_decode(hf, prompt, args.new))

    ours_times, hf_times = [], []
    for i in range(args.predictions):
        p = torch.randint(0, model.config.vocab_size, (64,), generator=gen).tolist()
        if i % 2:
            ours_times.append(ours_predict(model, p))
            hf_times.append(hf_predict(hf, p))
        else:
            hf_times.append(hf_predict(hf, p))
            ours_times.append(ours_predict(model, p))

    o_rate, h_rate = statistics.median(ours_rates), statistics.median(hf_rates)
    o_ms, h_ms = 1000 * statistics.median(ours_times), 1000 * statistics.median(hf_times)
    print(
        f"GPT-2-small shape, random weights, float32, batch 1, CPU, {args.threads} thread(s), "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"median of {args.rounds} alternating rounds; prompt 64 tokens\n")
    print(f"| {'measure':<48} | {'tokenscope':>10} | {'transformers':>12} | {'ratio':>6} |")
    print(f"|{'-' * 50}|{'-' * 12}:|{'-' * 14}:|{'-' * 7}:|")
    print(
        f"| {f'greedy decode, {args.new} new tokens (tokens/s)':<48} | {o_rate:>10.1f} | "
        f"{h_rate:>12.1f} | {o_rate / h_rate:>5.2f}x |"
    )
    print(
        f"| {'one next-token prediction, 64 tokens (ms)':<48} | {o_ms:>10.1f} | "
        f"{h_ms:>12.1f} | {h_ms / o_ms:>5.2f}x |"
    )
    print("\nratio: how many times faster Tokenscope is (higher is better)")


if __name__ == "__main__":
    main()
