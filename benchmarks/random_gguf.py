"""Random-weight GGUF files with a real model's shapes, for speed and memory benchmarks.

    write(path, LLAMA_1B, "q4_k_m", TokenizerFields.from_gguf(smollm2_path))

One writer for every shape table and quantization mix (`gguf` package, no llama.cpp tools):

    mix "q4_0"    every block matrix Q4_0; the token embedding (tied: also the output head)
                  as the caller says (Q4_0 or Q8_0). llama.cpp's own quantizer would give a
                  tied embedding the output head's type, Q6_K, unless told otherwise.
    mix "q4_k_m"  llama.cpp's Q4_K_M rule for a dense model: every block matrix Q4_K except
                  attn_v and ffn_down in the layers where llama.cpp's `use_more_bits` holds
                  (the first and last eighth, and every third layer in between), which are
                  Q6_K; a tied embedding Q6_K (llama.cpp's type for the output head).

The bytes are random but the block scales are set so every weight is `step * (q - centre)`
with a small `step`: activations stay finite and of ordinary size through the layers, in
Tokenscope and in llama.cpp alike. The tokenizer is copied from another GGUF file (padded
with unused control tokens up to the vocabulary size), so text can be encoded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter


@dataclass(frozen=True)
class Shapes:
    """A decoder's sizes, as its GGUF metadata states them."""

    name: str
    arch: str  # "llama" or "qwen2" (Qwen2 has q/k/v biases)
    layers: int
    width: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    rope_base: float
    rms_eps: float

    @property
    def head_size(self) -> int:
        return self.width // self.heads


QWEN_1_5B = Shapes("qwen2.5-1.5b-shapes-random", "qwen2", layers=28, width=1536, ffn=8960,
                   heads=12, kv_heads=2, vocab=151936, context=32768, rope_base=1e6,
                   rms_eps=1e-6)  # fmt: skip
# Llama 3.2 1B (its RoPE scaling left out: plain RoPE; it changes no cost per token).
LLAMA_1B = Shapes("llama3.2-1b-shapes-random", "llama", layers=16, width=2048, ffn=8192,
                  heads=32, kv_heads=8, vocab=128256, context=131072, rope_base=500000.0,
                  rms_eps=1e-5)  # fmt: skip

MIXES = ("q4_0", "q4_k_m")
FILE_TYPES = {"q4_0": 2, "q4_k_m": 15}  # llama.cpp's MOSTLY_Q4_0, MOSTLY_Q4_K_M


@dataclass(frozen=True)
class TokenizerFields:
    """A byte-level BPE tokenizer as GGUF metadata holds it."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    bos: int
    eos: int

    @classmethod
    def from_gguf(cls, path: str | Path) -> TokenizerFields:
        fields = GGUFReader(str(path)).fields

        def strings(key: str) -> list[str]:
            f = fields[key]
            return [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]

        types = fields["tokenizer.ggml.token_type"]
        pre = fields["tokenizer.ggml.pre"]
        return cls(
            tokens=strings("tokenizer.ggml.tokens"),
            types=[int(types.parts[i][0]) for i in types.data],
            merges=strings("tokenizer.ggml.merges"),
            pre=bytes(pre.parts[pre.data[0]]).decode(),
            bos=int(fields["tokenizer.ggml.bos_token_id"].parts[-1][0]),
            eos=int(fields["tokenizer.ggml.eos_token_id"].parts[-1][0]),
        )


def use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of the layers whose attn_v and ffn_down get more bits."""
    eighth = layers // 8
    return layer < eighth or layer >= 7 * layers // 8 or (layer - eighth) % 3 == 2


def matrix_types(shapes: Shapes, mix: str, embedding: Q) -> dict[str, Q]:
    """Every matrix's name and type in the file (the tied embedding included)."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; choose from {MIXES}")
    types = {"token_embd.weight": embedding}
    for i in range(shapes.layers):
        more = mix == "q4_k_m" and use_more_bits(i, shapes.layers)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                     "ffn_down"):  # fmt: skip
            kind = Q.Q4_0 if mix == "q4_0" else Q.Q4_K
            if more and name in ("attn_v", "ffn_down"):
                kind = Q.Q6_K
            types[f"blk.{i}.{name}.weight"] = kind
    return types


def _k_scales(sc: int, m: int) -> np.ndarray:
    """Q4_K's 12 bytes of 6-bit scales and mins, all eight sub-blocks alike."""
    out = np.zeros(12, dtype=np.uint8)
    out[0:4] = (sc & 63) | ((sc >> 4) << 6)  # sub-blocks 0-3, and the top bits of 4-7
    out[4:8] = (m & 63) | ((m >> 4) << 6)
    out[8:12] = (sc & 15) | ((m & 15) << 4)  # sub-blocks 4-7's low bits
    return out


def _f16_bytes(value: float, n: int) -> np.ndarray:
    return np.full(n, value, dtype=np.float16).view(np.uint8).reshape(n, 2)


def random_blocks(rng: np.random.Generator, kind: Q, rows: int, cols: int) -> np.ndarray:
    """Rows of random blocks whose weights are `step * (q - centre)`: the same spread as a
    Q4_0 block with scale `step`, whatever the type (0.0025, half that for wide rows)."""
    step = 0.02 / 8 if cols < 4096 else 0.01 / 8
    block, size = {Q.Q4_0: (32, 18), Q.Q8_0: (32, 34), Q.Q4_K: (256, 144),
                   Q.Q6_K: (256, 210)}[kind]  # fmt: skip
    if cols % block:
        raise ValueError(f"{kind.name} needs rows of a multiple of {block} weights, not {cols}")
    n = rows * cols // block
    b = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    if kind == Q.Q4_0:  # d, 16 bytes of nibbles: w = d * (q - 8)
        b[:, :2] = _f16_bytes(step, n)
    elif kind == Q.Q8_0:  # d, 32 int8: w = d * q (16 steps of 8 bits per 4-bit step)
        b[:, :2] = _f16_bytes(step / 16, n)
    elif kind == Q.Q4_K:  # d, dmin, scales, nibbles: w = d*sc*q - dmin*m = step * (q - 8)
        b[:, :2] = _f16_bytes(step / 16, n)
        b[:, 2:4] = _f16_bytes(step / 2, n)
        b[:, 4:16] = _k_scales(16, 16)
    else:  # Q6_K: ql, qh, 16 int8 scales, d: w = d * sc * (q - 32), a quarter step apart
        b[:, 192:208] = 8
        b[:, 208:210] = _f16_bytes(step / 32, n)
    return b.reshape(rows, -1)


def write(
    path: str | Path,
    shapes: Shapes,
    mix: str,
    tokenizer: TokenizerFields,
    *,
    embedding: Q | None = None,
    seed: int = 0,
) -> Path:
    """Write the file (replacing any) and return its path. `embedding`: the tied token
    embedding's type, by default Q8_0 for "q4_0" and Q6_K for "q4_k_m"."""
    if embedding is None:
        embedding = Q.Q8_0 if mix == "q4_0" else Q.Q6_K
    types = matrix_types(shapes, mix, embedding)
    if len(tokenizer.tokens) > shapes.vocab:
        raise ValueError(
            f"the tokenizer has {len(tokenizer.tokens)} tokens, more than the model's "
            f"vocabulary of {shapes.vocab}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d, hs, kv, ffn = shapes.width, shapes.head_size, shapes.kv_heads, shapes.ffn
    extra = shapes.vocab - len(tokenizer.tokens)
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), shapes.arch)
    w.add_name(shapes.name)
    w.add_context_length(shapes.context)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ffn)
    w.add_block_count(shapes.layers)
    w.add_head_count(shapes.heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(shapes.rope_base)
    w.add_layer_norm_rms_eps(shapes.rms_eps)
    w.add_file_type(FILE_TYPES[mix])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tokenizer.pre)
    w.add_token_list(tokenizer.tokens + [f"<|extra_{i}|>" for i in range(extra)])
    w.add_token_types(tokenizer.types + [3] * extra)  # control: never made by the merges
    w.add_token_merges(tokenizer.merges)
    w.add_bos_token_id(tokenizer.bos)
    w.add_eos_token_id(tokenizer.eos)
    w.add_add_bos_token(False)
    sizes = {"attn_q": (d, d), "attn_k": (kv * hs, d), "attn_v": (kv * hs, d),
             "attn_output": (d, d), "ffn_gate": (ffn, d), "ffn_up": (ffn, d),
             "ffn_down": (d, ffn)}  # fmt: skip
    w.add_tensor("token_embd.weight", random_blocks(rng, embedding, shapes.vocab, d),
                 raw_dtype=embedding)  # fmt: skip
    for i in range(shapes.layers):
        b = f"blk.{i}."
        for name, (rows, cols) in sizes.items():
            kind = types[b + name + ".weight"]
            w.add_tensor(b + name + ".weight", random_blocks(rng, kind, rows, cols), raw_dtype=kind)
        if shapes.arch == "qwen2":
            for name, n in [("attn_q", d), ("attn_k", kv * hs), ("attn_v", kv * hs)]:
                w.add_tensor(b + name + ".bias", np.zeros(n, dtype=np.float32))
        w.add_tensor(b + "attn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(b + "ffn_norm.weight", np.ones(d, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def cached(path: Path, shapes: Shapes, mix: str, tokenizer_from: str | Path,
           embedding: Q | None = None) -> Path:  # fmt: skip
    """`path`, written once (under a temporary name, then renamed: never half a file)."""
    if path.exists():
        return path
    print(f"writing {path} (random weights, once)", file=sys.stderr)
    partial = path.with_name(path.name + ".partial")
    write(partial, shapes, mix, TokenizerFields.from_gguf(tokenizer_from), embedding=embedding)
    partial.replace(path)
    return path
