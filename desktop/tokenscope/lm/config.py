"""The model config: one typed dataclass for every Transformer variant, plus named presets.

GPT-2 style: learned positions, LayerNorm, GELU MLP, biases, multi-head attention.
Llama style: rotary positions (RoPE), RMSNorm, SwiGLU MLP, no biases, grouped-query attention.
Any mix of the two is a valid config; the model reads only these fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

Position = Literal["learned", "rope"]
Norm = Literal["layernorm", "rmsnorm"]
Mlp = Literal["gelu", "swiglu"]

_BYTES_PER_ELEMENT = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ModelConfig:
    """Shape and variant of a decoder-only Transformer.

    `n_kv_head` below `n_head` gives grouped-query attention; `d_ff` defaults to 4 * d_model
    for a GELU MLP and to the Llama rule (8/3 * d_model rounded up to a multiple of 64) for SwiGLU.
    """

    vocab_size: int
    context_length: int
    n_layer: int
    n_head: int
    d_model: int
    n_kv_head: int | None = None
    d_ff: int | None = None
    position: Position = "learned"
    norm: Norm = "layernorm"
    mlp: Mlp = "gelu"
    gelu_approximate: Literal["tanh", "none"] = "tanh"  # GPT-2 uses the tanh approximation
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    # Llama 3 style frequency scaling: {"factor", "low_freq_factor", "high_freq_factor",
    # "original_context_length"}; None means plain RoPE.
    rope_scaling: dict[str, float] | None = None
    qkv_bias: bool = True
    out_bias: bool = True  # the attention output projection and the MLP
    tie_embeddings: bool = True
    dropout: float = 0.0
    name: str = "custom"

    def __post_init__(self) -> None:
        problems = []
        for f in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            if getattr(self, f) < 1:
                problems.append(f"{f} must be at least 1 (got {getattr(self, f)})")
        if self.d_model % self.n_head:
            problems.append(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.n_head % self.kv_heads:
            problems.append(f"n_head {self.n_head} is not a multiple of n_kv_head {self.kv_heads}")
        if self.position == "rope" and self.head_dim % 2:
            problems.append(f"rotary positions need an even head size (got {self.head_dim})")
        if self.position not in ("learned", "rope"):
            problems.append(f"position must be 'learned' or 'rope' (got {self.position!r})")
        if self.norm not in ("layernorm", "rmsnorm"):
            problems.append(f"norm must be 'layernorm' or 'rmsnorm' (got {self.norm!r})")
        if self.mlp not in ("gelu", "swiglu"):
            problems.append(f"mlp must be 'gelu' or 'swiglu' (got {self.mlp!r})")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    # ----- derived fields ------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def ffn_dim(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "gelu":
            return 4 * self.d_model
        return 64 * math.ceil(8 * self.d_model / 3 / 64)

    def parameter_count(self, *, include_embeddings: bool = True) -> int:
        """Number of trainable parameters (tied embeddings counted once)."""
        d, kv = self.d_model, self.kv_heads * self.head_dim
        norm = 2 * d if self.norm == "layernorm" else d  # LayerNorm has a bias, RMSNorm not
        attn = d * (d + 2 * kv) + d * d
        if self.qkv_bias:
            attn += d + 2 * kv
        if self.out_bias:
            attn += d
        n_in = 2 if self.mlp == "swiglu" else 1
        mlp = (n_in + 1) * d * self.ffn_dim
        if self.out_bias:
            mlp += n_in * self.ffn_dim + d
        total = self.n_layer * (attn + mlp + 2 * norm) + norm
        embeddings = self.vocab_size * d
        if self.position == "learned":
            embeddings += self.context_length * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        if include_embeddings:
            total += embeddings + head
        else:
            total += head  # the output head does real work per token
        return total

    def flops_per_token(self, context: int | None = None) -> int:
        """Forward-pass FLOPs for one token at the given context length (default: full).

        2 FLOPs per multiply-add over the non-embedding weights and the output head, plus the
        attention scores and weighted sum (2 * 2 * n_layer * context * d_model). Training costs
        about three times this (forward plus backward).
        """
        t = self.context_length if context is None else context
        weights = self.parameter_count(include_embeddings=False)
        if self.tie_embeddings:
            weights += self.vocab_size * self.d_model
        return 2 * weights + 4 * self.n_layer * t * self.d_model

    def memory_bytes(self, *, dtype: str = "float32", context: int | None = None) -> dict[str, int]:
        """Estimated memory for inference: weights plus the KV cache for `context` tokens."""
        size = _BYTES_PER_ELEMENT[dtype]
        t = self.context_length if context is None else context
        weights = self.parameter_count() * size
        kv_cache = 2 * self.n_layer * t * self.kv_heads * self.head_dim * size
        return {"weights": weights, "kv_cache": kv_cache, "total": weights + kv_cache}

    # ----- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from a dict, refusing unknown keys so typos are not silently ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.name not in data
        )
        if missing:
            raise ValueError(f"model config is missing: {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _gpt2(**kw: Any) -> ModelConfig:
    return ModelConfig(position="learned", norm="layernorm", mlp="gelu", **kw)


def _llama(**kw: Any) -> ModelConfig:
    return ModelConfig(
        position="rope", norm="rmsnorm", mlp="swiglu", qkv_bias=False, out_bias=False, **kw
    )


PRESETS: dict[str, ModelConfig] = {
    # For tests: a few thousand parameters, runs in milliseconds.
    "tiny": _gpt2(name="tiny", vocab_size=256, context_length=64, n_layer=2, n_head=2, d_model=32),
    "tiny-llama": _llama(
        name="tiny-llama",
        vocab_size=256,
        context_length=64,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        d_model=32,
        tie_embeddings=False,
    ),
    # Small enough to train on a laptop CPU in minutes.
    "small": _gpt2(
        name="small", vocab_size=4096, context_length=256, n_layer=4, n_head=4, d_model=256
    ),
    "gpt2-small": _gpt2(
        name="gpt2-small", vocab_size=50257, context_length=1024, n_layer=12, n_head=12, d_model=768
    ),
    # The shape of SmolLM2-135M.
    "llama-small": _llama(
        name="llama-small",
        vocab_size=49152,
        context_length=2048,
        n_layer=30,
        n_head=9,
        n_kv_head=3,
        d_model=576,
        d_ff=1536,
        rope_base=100000.0,
    ),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset, optionally with some fields changed (e.g. vocab_size)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}"
        ) from None
    return base.replace(**overrides) if overrides else base


__all__ = ["PRESETS", "ModelConfig", "preset"]
