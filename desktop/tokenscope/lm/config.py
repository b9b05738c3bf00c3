"""The model config: one typed dataclass for every Transformer variant, plus named presets.

GPT-2 style: learned positions, LayerNorm, GELU MLP, biases, multi-head attention.
Llama style: rotary positions (RoPE), RMSNorm, SwiGLU MLP, no biases, grouped-query attention.
Any mix of the two is a valid config; the model reads only these fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any, Literal

Position = Literal["learned", "rope"]
Norm = Literal["layernorm", "rmsnorm"]
Mlp = Literal["gelu", "swiglu", "geglu", "none"]  # "none": attention-only blocks
NormPlacement = Literal["pre", "post", "sandwich"]
QkNorm = Literal["none", "head", "full"]
LAYER_TYPES = ("full", "sliding")

_BYTES_PER_ELEMENT = {"float32": 4, "float16": 2, "bfloat16": 2}


# Sanity bounds for a config read from a file: far above any real model (the largest open
# models have ~126 layers, width 16384, vocabularies of ~262k and contexts of ~1M tokens),
# far below what would exhaust memory while the model is merely described.
MAX_VOCAB_SIZE = 1 << 24
MAX_CONTEXT_LENGTH = 1 << 24
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_D_MODEL = 1 << 16
MAX_D_FF = 1 << 20
MAX_ROPE_BASE = 1e12
MAX_ROPE_FACTOR = 1e4
MAX_NAME_CHARS = 1024
ROPE_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_context_length")
_CHOICES = {
    "position": ("learned", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu", "geglu", "none"),
    "gelu_approximate": ("tanh", "none"),
    "norm_placement": ("pre", "post", "sandwich"),
    "qk_norm": ("none", "head", "full"),
}


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
    # ----- the variants of later families (each default is the GPT-2 / Llama behaviour) -----
    # Heads wider or narrower than d_model / n_head (Gemma 3, Qwen3).
    head_size: int | None = None
    # Rotate only this leading share of each head (GPT-NeoX / Pythia: 0.25).
    rotary_fraction: float = 1.0
    # x + attn(norm1(x)) + mlp(norm2(x)) instead of two residual steps (GPT-NeoX).
    parallel_residual: bool = False
    # Where the norms sit around each sub-layer: "pre" x + f(norm(x)); "post" (OLMo 2)
    # x + norm(f(x)); "sandwich" (Gemma) x + norm2(f(norm1(x))).
    norm_placement: NormPlacement = "pre"
    # RMSNorm of queries and keys before rotation: per head (Qwen3, Gemma 3) or over the
    # whole projection (OLMo 2).
    qk_norm: QkNorm = "none"
    # The embedding rows are multiplied by this (Gemma: sqrt(d_model)).
    embed_multiplier: float = 1.0
    # Attention scores are q.k times this; None is 1 / sqrt(head size).
    attn_scale: float | None = None
    # Per layer "full" or "sliding" (None: all full); sliding layers see the last
    # `sliding_window` positions only, rotated with `rope_local_base` when it is set (Gemma 3).
    layer_types: tuple[str, ...] | None = None
    sliding_window: int | None = None
    rope_local_base: float | None = None
    # cap * tanh(x / cap) on attention scores and on the final logits (Gemma 2).
    attn_softcap: float | None = None
    final_softcap: float | None = None

    def __post_init__(self) -> None:
        """Check every field's type and range before anything is built from the config.

        Configs come from files (checkpoints, Hugging Face config.json, GGUF metadata), so a
        wrong type or an absurd size must stop here with a ValueError that names the field and
        the allowed range, not deep inside torch (or after gigabytes were allocated).
        Integral floats are not accepted for sizes; numbers are normalised to int and float.
        """
        problems = _problems(self)
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    # ----- derived fields ------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.head_size if self.head_size is not None else self.d_model // self.n_head

    @property
    def rotary_dim(self) -> int:
        """How many leading dimensions of each head are rotated (even)."""
        return 2 * round(self.head_dim * self.rotary_fraction / 2)

    @property
    def gated_mlp(self) -> bool:
        return self.mlp in ("swiglu", "geglu")

    def layer_type(self, layer: int) -> str:
        return self.layer_types[layer] if self.layer_types else "full"

    @property
    def classic(self) -> bool:
        """Whether the blocks are plain GPT-2 / Llama ones (none of the later variants)."""
        return (
            self.head_size in (None, self.d_model // self.n_head)
            and self.rotary_fraction == 1.0
            and not self.parallel_residual
            and self.norm_placement == "pre"
            and self.qk_norm == "none"
            and self.mlp != "geglu"
            and self.embed_multiplier == 1.0
            and self.attn_scale is None
            and "sliding" not in (self.layer_types or ())
            and self.attn_softcap is None
            and self.final_softcap is None
        )

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def ffn_dim(self) -> int:
        if self.mlp == "none":
            return 0
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "gelu":
            return 4 * self.d_model
        return 64 * math.ceil(8 * self.d_model / 3 / 64)

    def parameter_count(self, *, include_embeddings: bool = True) -> int:
        """Number of trainable parameters (tied embeddings counted once)."""
        d, q, kv = self.d_model, self.n_head * self.head_dim, self.kv_heads * self.head_dim
        norm = 2 * d if self.norm == "layernorm" else d  # LayerNorm has a bias, RMSNorm not
        attn = d * (q + 2 * kv) + q * d
        if self.qkv_bias:
            attn += q + 2 * kv
        if self.out_bias:
            attn += d
        if self.qk_norm == "head":
            attn += 2 * self.head_dim
        elif self.qk_norm == "full":
            attn += q + kv
        n_in = 2 if self.gated_mlp else 1
        mlp = (n_in + 1) * d * self.ffn_dim
        if self.out_bias:
            mlp += n_in * self.ffn_dim + d
        norms = 4 if self.norm_placement == "sandwich" else 2
        if self.mlp == "none":  # attention-only: no MLP and none of its norms
            mlp, norms = 0, norms // 2
        total = self.n_layer * (attn + mlp + norms * norm) + norm
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
        attention scores and weighted sum (2 * 2 * n_layer * context * heads * head size, which
        is d_model unless the heads are sized otherwise). Training costs
        about three times this (forward plus backward).
        """
        t = self.context_length if context is None else context
        weights = self.parameter_count(include_embeddings=False)
        if self.tie_embeddings:
            weights += self.vocab_size * self.d_model
        return 2 * weights + 4 * self.n_layer * t * self.n_head * self.head_dim

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
    def from_dict(cls, data: object) -> ModelConfig:
        """Build a config from a dict, refusing unknown keys so typos are not silently ignored.

        Raises ValueError naming the unknown, missing or invalid fields.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a JSON object (got {_got(data)})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise ValueError(
                f"unknown model config keys: {', '.join(_short(k) for k in unknown[:8])} "
                f"(known: {', '.join(sorted(known))})"
            )
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


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(value: Any) -> str:
    return f"{_short(repr(value))} ({type(value).__name__})"


def _whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number type (not a bool, not a float)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # int, NumPy integers
    except TypeError:
        return None


def _real(value: Any) -> float | None:
    """`value` as a finite float when it is a number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _set(config: ModelConfig, name: str, value: object) -> None:
    object.__setattr__(config, name, value)


def _check_whole(config: ModelConfig, name: str, low: int, high: int, problems: list[str]) -> None:
    raw = getattr(config, name)
    value = _whole(raw)
    if value is None or not low <= value <= high:
        problems.append(f"{name} must be a whole number in {low}..{high:,} (got {_got(raw)})")
    else:
        _set(config, name, value)


def _check_real(
    config: ModelConfig, name: str, low: float, high: float, problems: list[str], *, open_low: bool
) -> None:
    raw = getattr(config, name)
    value = _real(raw)
    above = value is not None and (value > low if open_low else value >= low)
    if value is None or not above or value > high:
        bracket = "(" if open_low else "["
        problems.append(f"{name} must be a number in {bracket}{low:g}, {high:g}] (got {_got(raw)})")
    else:
        _set(config, name, value)


def _rope_scaling_problems(config: ModelConfig) -> list[str]:
    scaling = config.rope_scaling
    if scaling is None:
        return []
    expected = f"null or an object with exactly {', '.join(ROPE_SCALING_KEYS)}"
    if not isinstance(scaling, dict) or set(scaling) != set(ROPE_SCALING_KEYS):
        return [f"rope_scaling must be {expected} (got {_got(scaling)})"]
    reals = {key: _real(scaling[key]) for key in ROPE_SCALING_KEYS}
    bad = [key for key, value in reals.items() if value is None or value <= 0]
    if bad:
        return [
            f"rope_scaling.{key} must be a positive number (got {_got(scaling[key])})"
            for key in bad
        ]
    values = {key: value for key, value in reals.items() if value is not None}  # all of them
    problems = []
    if not 1.0 <= values["factor"] <= MAX_ROPE_FACTOR:
        problems.append(f"rope_scaling.factor must be in [1, {MAX_ROPE_FACTOR:g}]")
    if values["high_freq_factor"] <= values["low_freq_factor"]:
        problems.append("rope_scaling.high_freq_factor must be above low_freq_factor")
    if values["original_context_length"] > MAX_CONTEXT_LENGTH:
        problems.append(f"rope_scaling.original_context_length must be <= {MAX_CONTEXT_LENGTH:,}")
    if not problems:
        _set(config, "rope_scaling", values)
    return problems


def _problems(c: ModelConfig) -> list[str]:
    """Every problem with a config's fields; normalises valid numbers in place."""
    problems: list[str] = []
    _check_whole(c, "vocab_size", 1, MAX_VOCAB_SIZE, problems)
    # A context of 1 token leaves no room to generate after the prompt.
    _check_whole(c, "context_length", 2, MAX_CONTEXT_LENGTH, problems)
    _check_whole(c, "n_layer", 1, MAX_LAYERS, problems)
    _check_whole(c, "n_head", 1, MAX_HEADS, problems)
    _check_whole(c, "d_model", 1, MAX_D_MODEL, problems)
    if c.n_kv_head is not None:
        _check_whole(c, "n_kv_head", 1, MAX_HEADS, problems)
    if c.d_ff is not None:
        _check_whole(c, "d_ff", 1, MAX_D_FF, problems)
    for name, choices in _CHOICES.items():
        value = getattr(c, name)
        if not isinstance(value, str) or value not in choices:
            problems.append(f"{name} must be {' or '.join(map(repr, choices))} (got {_got(value)})")
    _check_real(c, "norm_eps", 0.0, 1.0, problems, open_low=True)
    _check_real(c, "rope_base", 1.0, MAX_ROPE_BASE, problems, open_low=True)
    _check_real(c, "dropout", 0.0, 1.0, problems, open_low=False)
    problems += _variant_problems(c)
    if not problems and c.dropout >= 1.0:
        problems.append(f"dropout must be in [0, 1) (got {c.dropout})")
    for name in ("qkv_bias", "out_bias", "tie_embeddings"):
        if not isinstance(getattr(c, name), bool):
            problems.append(f"{name} must be true or false (got {_got(getattr(c, name))})")
    if not isinstance(c.name, str) or len(c.name) > MAX_NAME_CHARS:
        problems.append(f"name must be a text of at most {MAX_NAME_CHARS} characters")
    problems += _rope_scaling_problems(c)
    if problems:
        return problems  # the relations below need valid numbers
    if c.head_size is None and c.d_model % c.n_head:
        problems.append(f"d_model {c.d_model} is not divisible by n_head {c.n_head}")
    elif c.n_head % c.kv_heads:
        problems.append(f"n_head {c.n_head} is not a multiple of n_kv_head {c.kv_heads}")
    elif c.position == "rope" and c.head_dim % 2:
        problems.append(f"rotary positions need an even head size (got {c.head_dim})")
    elif c.position == "rope" and c.rotary_dim < 2:
        problems.append(
            f"rotary_fraction {c.rotary_fraction} rotates no dimension of a {c.head_dim}-wide head"
        )
    if c.layer_types is not None and len(c.layer_types) != c.n_layer:
        problems.append(f"layer_types names {len(c.layer_types)} layers; the model has {c.n_layer}")
    if "sliding" in (c.layer_types or ()) and c.sliding_window is None:
        problems.append("sliding layers need a sliding_window")
    return problems


def _variant_problems(c: ModelConfig) -> list[str]:
    """The later families' fields (see ModelConfig); normalises valid numbers in place."""
    problems: list[str] = []
    if c.head_size is not None:
        _check_whole(c, "head_size", 1, MAX_D_MODEL, problems)
    if c.sliding_window is not None:
        _check_whole(c, "sliding_window", 1, MAX_CONTEXT_LENGTH, problems)
    _check_real(c, "rotary_fraction", 0.0, 1.0, problems, open_low=True)
    _check_real(c, "embed_multiplier", 0.0, MAX_D_MODEL, problems, open_low=True)
    for name, high in (
        ("attn_scale", 1e3),
        ("rope_local_base", MAX_ROPE_BASE),
        ("attn_softcap", 1e6),
        ("final_softcap", 1e6),
    ):
        if getattr(c, name) is not None:
            _check_real(c, name, 0.0, high, problems, open_low=True)
    if not isinstance(c.parallel_residual, bool):
        problems.append(
            f"parallel_residual must be true or false (got {_got(c.parallel_residual)})"
        )
    types = c.layer_types
    if types is not None:
        if (
            not isinstance(types, (list, tuple))
            or len(types) > MAX_LAYERS
            or any(t not in LAYER_TYPES for t in types)
        ):
            problems.append(
                f"layer_types must be null or a list of {' or '.join(map(repr, LAYER_TYPES))} "
                f"(got {_got(types)})"
            )
        else:
            _set(c, "layer_types", tuple(types))
    return problems


#: the longest model name a loader takes from a file as it is
MAX_DISPLAY_NAME = 200


def model_name(value: Any, fallback: str) -> str:
    """A model's display name from a file: a text of sane length, else `fallback` (cut)."""
    if isinstance(value, str) and value.strip() and len(value) <= MAX_DISPLAY_NAME:
        return value
    return fallback[:MAX_DISPLAY_NAME] or "model"


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
    # The bundled model's shape (about a million parameters): minutes on a laptop CPU.
    "mini": _gpt2(
        name="mini", vocab_size=2048, context_length=128, n_layer=4, n_head=4, d_model=128
    ),
    # Four times wider and twice as long: tens of minutes to hours on a laptop CPU.
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


__all__ = ["PRESETS", "ROPE_SCALING_KEYS", "ModelConfig", "model_name", "preset"]
