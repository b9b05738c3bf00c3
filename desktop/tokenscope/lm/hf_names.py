"""Hugging Face checkpoints mapped onto our one Transformer: config fields and tensor names.

The tables are data. Each rule names one of our tensors, the Hugging Face tensors it is made
from ("{i}" is the layer; "a|b" is whichever of two names a checkpoint uses) and how:

    copy      same layout
    t         nn.Linear's (out, in) transposed to our (in, out)
    cat_t     several (out, in) matrices stacked along "out", then transposed (q, k, v -> qkv)
    cat       several vectors concatenated (the biases of q, k, v)
    plus1     a Gemma norm weight w, which scales by (1 + w): stored as 1 + w
    neox_t    GPT-NeoX's fused query_key_value (out, in), rows grouped per head as
              (q, k, v) of that head: regrouped to all queries, all keys, all values, then "t"
    neox      the same regrouping for its bias

A rule whose target our model does not have (a bias the config turns off, the head of a
tied model) is skipped; a needed source that is missing is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import EllipsisType
from typing import Any, overload

import torch

from tokenscope.lm.config import ROPE_SCALING_KEYS, ModelConfig
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.progress import report

Rule = tuple[str, tuple[str, ...], str]

GPT2_RULES: tuple[Rule, ...] = (
    ("embed.weight", ("transformer.wte.weight",), "copy"),
    ("pos_embed.weight", ("transformer.wpe.weight",), "copy"),
    ("blocks.{i}.attn_norm.weight", ("transformer.h.{i}.ln_1.weight",), "copy"),
    ("blocks.{i}.attn_norm.bias", ("transformer.h.{i}.ln_1.bias",), "copy"),
    # GPT-2's Conv1D already stores (in, out), with q, k, v side by side.
    ("blocks.{i}.attn.qkv.weight", ("transformer.h.{i}.attn.c_attn.weight",), "copy"),
    ("blocks.{i}.attn.qkv.bias", ("transformer.h.{i}.attn.c_attn.bias",), "copy"),
    ("blocks.{i}.attn.out.weight", ("transformer.h.{i}.attn.c_proj.weight",), "copy"),
    ("blocks.{i}.attn.out.bias", ("transformer.h.{i}.attn.c_proj.bias",), "copy"),
    ("blocks.{i}.mlp_norm.weight", ("transformer.h.{i}.ln_2.weight",), "copy"),
    ("blocks.{i}.mlp_norm.bias", ("transformer.h.{i}.ln_2.bias",), "copy"),
    ("blocks.{i}.mlp.up.weight", ("transformer.h.{i}.mlp.c_fc.weight",), "copy"),
    ("blocks.{i}.mlp.up.bias", ("transformer.h.{i}.mlp.c_fc.bias",), "copy"),
    ("blocks.{i}.mlp.down.weight", ("transformer.h.{i}.mlp.c_proj.weight",), "copy"),
    ("blocks.{i}.mlp.down.bias", ("transformer.h.{i}.mlp.c_proj.bias",), "copy"),
    ("final_norm.weight", ("transformer.ln_f.weight",), "copy"),
    ("final_norm.bias", ("transformer.ln_f.bias",), "copy"),
    ("head.weight", ("lm_head.weight",), "t"),
)

_ATTN = "model.layers.{i}.self_attn"
LLAMA_RULES: tuple[Rule, ...] = (
    ("embed.weight", ("model.embed_tokens.weight",), "copy"),
    ("blocks.{i}.attn_norm.weight", ("model.layers.{i}.input_layernorm.weight",), "copy"),
    (
        "blocks.{i}.attn.qkv.weight",
        (f"{_ATTN}.q_proj.weight", f"{_ATTN}.k_proj.weight", f"{_ATTN}.v_proj.weight"),
        "cat_t",
    ),
    (
        "blocks.{i}.attn.qkv.bias",
        (f"{_ATTN}.q_proj.bias", f"{_ATTN}.k_proj.bias", f"{_ATTN}.v_proj.bias"),
        "cat",
    ),
    ("blocks.{i}.attn.out.weight", (f"{_ATTN}.o_proj.weight",), "t"),
    ("blocks.{i}.attn.out.bias", (f"{_ATTN}.o_proj.bias",), "copy"),
    ("blocks.{i}.mlp_norm.weight", ("model.layers.{i}.post_attention_layernorm.weight",), "copy"),
    (
        "blocks.{i}.mlp.gate_up.weight",
        ("model.layers.{i}.mlp.gate_proj.weight", "model.layers.{i}.mlp.up_proj.weight"),
        "cat_t",
    ),
    ("blocks.{i}.mlp.down.weight", ("model.layers.{i}.mlp.down_proj.weight",), "t"),
    ("final_norm.weight", ("model.norm.weight",), "copy"),
    ("head.weight", ("lm_head.weight",), "t"),
)

_LAYER = "model.layers.{i}"
QWEN3_RULES: tuple[Rule, ...] = (
    *LLAMA_RULES,
    ("blocks.{i}.attn.q_norm.weight", (f"{_ATTN}.q_norm.weight",), "copy"),
    ("blocks.{i}.attn.k_norm.weight", (f"{_ATTN}.k_norm.weight",), "copy"),
)

# OLMo 2 norms the sub-layers' outputs (no input norms) and its queries and keys as wholes.
OLMO2_RULES: tuple[Rule, ...] = (
    *(r for r in LLAMA_RULES if r[0] not in ("blocks.{i}.attn_norm.weight",
                                             "blocks.{i}.mlp_norm.weight")),
    ("blocks.{i}.attn_post_norm.weight", (f"{_LAYER}.post_attention_layernorm.weight",), "copy"),
    ("blocks.{i}.mlp_post_norm.weight", (f"{_LAYER}.post_feedforward_layernorm.weight",), "copy"),
    ("blocks.{i}.attn.q_norm.weight", (f"{_ATTN}.q_norm.weight",), "copy"),
    ("blocks.{i}.attn.k_norm.weight", (f"{_ATTN}.k_norm.weight",), "copy"),
)  # fmt: skip

# Gemma 3: four norms per layer, QK-norm, every norm weight w meaning (1 + w).
GEMMA3_RULES: tuple[Rule, ...] = (
    *(r for r in LLAMA_RULES if "norm" not in r[0]),
    ("blocks.{i}.attn_norm.weight", (f"{_LAYER}.input_layernorm.weight",), "plus1"),
    ("blocks.{i}.attn_post_norm.weight", (f"{_LAYER}.post_attention_layernorm.weight",), "plus1"),
    ("blocks.{i}.mlp_norm.weight", (f"{_LAYER}.pre_feedforward_layernorm.weight",), "plus1"),
    ("blocks.{i}.mlp_post_norm.weight", (f"{_LAYER}.post_feedforward_layernorm.weight",), "plus1"),
    ("blocks.{i}.attn.q_norm.weight", (f"{_ATTN}.q_norm.weight",), "plus1"),
    ("blocks.{i}.attn.k_norm.weight", (f"{_ATTN}.k_norm.weight",), "plus1"),
    ("final_norm.weight", ("model.norm.weight",), "plus1"),
)

# Gemma 2: the same without QK-norm.
GEMMA2_RULES: tuple[Rule, ...] = tuple(r for r in GEMMA3_RULES if "q_norm" not in r[0]
                                       and "k_norm" not in r[0])  # fmt: skip

_NEOX = "gpt_neox.layers.{i}"
GPT_NEOX_RULES: tuple[Rule, ...] = (
    ("embed.weight", ("gpt_neox.embed_in.weight",), "copy"),
    ("blocks.{i}.attn_norm.weight", (f"{_NEOX}.input_layernorm.weight",), "copy"),
    ("blocks.{i}.attn_norm.bias", (f"{_NEOX}.input_layernorm.bias",), "copy"),
    ("blocks.{i}.attn.qkv.weight", (f"{_NEOX}.attention.query_key_value.weight",), "neox_t"),
    ("blocks.{i}.attn.qkv.bias", (f"{_NEOX}.attention.query_key_value.bias",), "neox"),
    ("blocks.{i}.attn.out.weight", (f"{_NEOX}.attention.dense.weight",), "t"),
    ("blocks.{i}.attn.out.bias", (f"{_NEOX}.attention.dense.bias",), "copy"),
    ("blocks.{i}.mlp_norm.weight", (f"{_NEOX}.post_attention_layernorm.weight",), "copy"),
    ("blocks.{i}.mlp_norm.bias", (f"{_NEOX}.post_attention_layernorm.bias",), "copy"),
    ("blocks.{i}.mlp.up.weight", (f"{_NEOX}.mlp.dense_h_to_4h.weight",), "t"),
    ("blocks.{i}.mlp.up.bias", (f"{_NEOX}.mlp.dense_h_to_4h.bias",), "copy"),
    ("blocks.{i}.mlp.down.weight", (f"{_NEOX}.mlp.dense_4h_to_h.weight",), "t"),
    ("blocks.{i}.mlp.down.bias", (f"{_NEOX}.mlp.dense_4h_to_h.bias",), "copy"),
    ("final_norm.weight", ("gpt_neox.final_layer_norm.weight",), "copy"),
    ("final_norm.bias", ("gpt_neox.final_layer_norm.bias",), "copy"),
    # Published checkpoints name the head embed_out; transformers 5 saves it as lm_head.
    ("head.weight", ("embed_out.weight|lm_head.weight",), "t"),
)

# ----- GGUF (llama.cpp) names -----------------------------------------------------------------
# GGUF stores every matrix as nn.Linear does, (out, in) in NumPy order, even GPT-2's (the
# converter transposes its Conv1D weights), so every matrix takes "t" or "cat_t" here.

_BLK = "blk.{i}"
GGUF_LLAMA_RULES: tuple[Rule, ...] = (
    ("embed.weight", ("token_embd.weight",), "copy"),
    ("blocks.{i}.attn_norm.weight", (f"{_BLK}.attn_norm.weight",), "copy"),
    (
        "blocks.{i}.attn.qkv.weight",
        (f"{_BLK}.attn_q.weight", f"{_BLK}.attn_k.weight", f"{_BLK}.attn_v.weight"),
        "cat_t",
    ),
    (
        "blocks.{i}.attn.qkv.bias",
        (f"{_BLK}.attn_q.bias", f"{_BLK}.attn_k.bias", f"{_BLK}.attn_v.bias"),
        "cat",
    ),
    ("blocks.{i}.attn.out.weight", (f"{_BLK}.attn_output.weight",), "t"),
    ("blocks.{i}.attn.out.bias", (f"{_BLK}.attn_output.bias",), "copy"),
    ("blocks.{i}.mlp_norm.weight", (f"{_BLK}.ffn_norm.weight",), "copy"),
    (
        "blocks.{i}.mlp.gate_up.weight",
        (f"{_BLK}.ffn_gate.weight", f"{_BLK}.ffn_up.weight"),
        "cat_t",
    ),
    ("blocks.{i}.mlp.down.weight", (f"{_BLK}.ffn_down.weight",), "t"),
    ("final_norm.weight", ("output_norm.weight",), "copy"),
    ("head.weight", ("output.weight",), "t"),
)

GGUF_GPT2_RULES: tuple[Rule, ...] = (
    ("embed.weight", ("token_embd.weight",), "copy"),
    ("pos_embed.weight", ("position_embd.weight",), "copy"),
    ("blocks.{i}.attn_norm.weight", (f"{_BLK}.attn_norm.weight",), "copy"),
    ("blocks.{i}.attn_norm.bias", (f"{_BLK}.attn_norm.bias",), "copy"),
    ("blocks.{i}.attn.qkv.weight", (f"{_BLK}.attn_qkv.weight",), "t"),
    ("blocks.{i}.attn.qkv.bias", (f"{_BLK}.attn_qkv.bias",), "copy"),
    ("blocks.{i}.attn.out.weight", (f"{_BLK}.attn_output.weight",), "t"),
    ("blocks.{i}.attn.out.bias", (f"{_BLK}.attn_output.bias",), "copy"),
    ("blocks.{i}.mlp_norm.weight", (f"{_BLK}.ffn_norm.weight",), "copy"),
    ("blocks.{i}.mlp_norm.bias", (f"{_BLK}.ffn_norm.bias",), "copy"),
    ("blocks.{i}.mlp.up.weight", (f"{_BLK}.ffn_up.weight",), "t"),
    ("blocks.{i}.mlp.up.bias", (f"{_BLK}.ffn_up.bias",), "copy"),
    ("blocks.{i}.mlp.down.weight", (f"{_BLK}.ffn_down.weight",), "t"),
    ("blocks.{i}.mlp.down.bias", (f"{_BLK}.ffn_down.bias",), "copy"),
    ("final_norm.weight", ("output_norm.weight",), "copy"),
    ("final_norm.bias", ("output_norm.bias",), "copy"),
    ("head.weight", ("output.weight",), "t"),
)

# llama.cpp's converter stores Gemma's norm weights already as (1 + w).
GGUF_GEMMA3_RULES: tuple[Rule, ...] = (
    *(r for r in GGUF_LLAMA_RULES if "bias" not in r[0]),
    ("blocks.{i}.attn.q_norm.weight", (f"{_BLK}.attn_q_norm.weight",), "copy"),
    ("blocks.{i}.attn.k_norm.weight", (f"{_BLK}.attn_k_norm.weight",), "copy"),
    ("blocks.{i}.attn_post_norm.weight", (f"{_BLK}.post_attention_norm.weight",), "copy"),
    ("blocks.{i}.mlp_post_norm.weight", (f"{_BLK}.post_ffw_norm.weight",), "copy"),
)


GGUF_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # rows_permuted: llama.cpp's converter reorders the rows of Q and K for its interleaved
    # RoPE; the loader puts them back into the "rotate half" order our model uses.
    "llama": {
        "rules": GGUF_LLAMA_RULES,
        "style": "llama",
        "rows_permuted": True,
        "qkv_bias": False,
    },
    "qwen2": {
        "rules": GGUF_LLAMA_RULES,
        "style": "llama",
        "rows_permuted": False,
        "qkv_bias": True,
    },
    "gpt2": {"rules": GGUF_GPT2_RULES, "style": "gpt2", "rows_permuted": False},
    "gemma3": {
        "rules": GGUF_GEMMA3_RULES,
        "style": "gemma3",
        "rows_permuted": False,
        "qkv_bias": False,
    },
}
"""GGUF `general.architecture` values Tokenscope loads and how (Mistral 7B is "llama")."""


RULES: dict[str, tuple[Rule, ...]] = {
    "gpt2": GPT2_RULES,
    "gpt_neox": GPT_NEOX_RULES,
    "gemma2": GEMMA2_RULES,
    "gemma3_text": GEMMA3_RULES,
    "llama": LLAMA_RULES,
    "mistral": LLAMA_RULES,
    "olmo2": OLMO2_RULES,
    "qwen2": LLAMA_RULES,
    "qwen3": QWEN3_RULES,
}


def _neox_regroup(w: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """GPT-NeoX's fused rows (per head: its q, k, v) as (all q, all k, all v)."""
    heads, size = config.n_head, config.head_dim
    grouped = w.reshape(heads, 3, size, *w.shape[1:]).transpose(0, 1)
    return grouped.reshape(w.shape)


_OPS: dict[str, Callable[[list[torch.Tensor], ModelConfig], torch.Tensor]] = {
    "copy": lambda ts, c: ts[0],
    "t": lambda ts, c: ts[0].t(),
    "cat_t": lambda ts, c: torch.cat(ts, dim=0).t(),
    "cat": lambda ts, c: torch.cat(ts, dim=0),
    "plus1": lambda ts, c: ts[0].float() + 1.0,
    "neox_t": lambda ts, c: _neox_regroup(ts[0], c).t(),
    "neox": lambda ts, c: _neox_regroup(ts[0], c),
}


class _Fields:
    """Typed reads of config.json fields; each problem names the field and what was expected.

    Ranges are ModelConfig's; here only types, so that a string or a list where a number
    belongs is named as such instead of surfacing as a TypeError inside the model.
    """

    def __init__(self, hf: Mapping[str, Any]) -> None:
        self.hf = hf

    def _get(self, key: str, default: Any) -> Any:
        value = self.hf.get(key, default)
        if value is ...:
            raise ModelFormatError(f"config.json lacks {key!r}")
        return value

    @overload
    def whole(self, key: str, default: int | EllipsisType = ...) -> int: ...
    @overload
    def whole(self, key: str, default: None) -> int | None: ...
    def whole(self, key: str, default: int | EllipsisType | None = ...) -> int | None:
        """The field as a whole number of at least 1; None only where `default` is None."""
        value = self._get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelFormatError(
                f"config.json: {key} = {_short(value)} is not a whole number of at least 1"
            )
        return value

    def real(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if value is None:
            return default
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ModelFormatError(f"config.json: {key} = {_short(value)} is not a number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ModelFormatError(f"config.json: {key} = {_short(value)} is not true or false")
        return value

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.hf.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ModelFormatError(
                f"config.json: {key} = {_short(value)} is not an object (or null)"
            )
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _rope_params(f: _Fields, layer_type: str | None = None) -> Mapping[str, Any]:
    """The rope_parameters section (newer transformers), or that of one layer type."""
    params = f.section("rope_parameters")
    if layer_type is not None and layer_type in params:
        section = params[layer_type]
        if not isinstance(section, dict):
            raise ModelFormatError(f"config.json: rope_parameters.{layer_type} is not an object")
        return section
    return params


def _rope_base(
    f: _Fields, layer_type: str | None = None, old_key: str = "rope_theta", default: float = 1e4
) -> float:
    params = _rope_params(f, layer_type)  # newer transformers keep rope_theta here
    if params.get("rope_theta") is not None:
        return _Fields(params).real("rope_theta", default)
    return f.real(old_key, default)


def _rope_scaling(f: _Fields, layer_type: str | None = None) -> dict[str, float] | None:
    scaling = f.section("rope_scaling") or _rope_params(f, layer_type)
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind in (None, "default"):
        return None
    if kind != "llama3":
        raise ModelFormatError(
            f"config.json: RoPE scaling {_short(kind)} is not supported (supported: llama3)"
        )
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    fields = _Fields(scaling)
    values = []
    for key in keys:
        if key not in scaling:
            raise ModelFormatError(f"config.json: the llama3 RoPE scaling lacks {key!r}")
        values.append(fields.real(key, 0.0))
    return dict(zip(ROPE_SCALING_KEYS, values, strict=True))


def config_from_hf(hf: Mapping[str, Any], name: str = "custom") -> ModelConfig:
    """Our ModelConfig for a Hugging Face config.json dict.

    Raises ModelFormatError naming a field of the wrong type or an unsupported variant, and
    ValueError (from ModelConfig) naming a field out of range.
    """
    if not isinstance(hf, Mapping):
        raise ModelFormatError("config.json does not hold a JSON object")
    f = _Fields(hf)
    kind = hf.get("model_type")
    if kind == "gpt2":
        activation = hf.get("activation_function", "gelu_new")
        return ModelConfig(
            name=name,
            vocab_size=f.whole("vocab_size"),
            context_length=f.whole("n_positions"),
            n_layer=f.whole("n_layer"),
            n_head=f.whole("n_head"),
            d_model=f.whole("n_embd"),
            d_ff=f.whole("n_inner", None),
            norm_eps=f.real("layer_norm_epsilon", 1e-5),
            gelu_approximate="tanh" if activation in ("gelu_new", "gelu_pytorch_tanh") else "none",
            tie_embeddings=f.flag("tie_word_embeddings", True),
        )
    if isinstance(kind, str) and kind in ("llama", "mistral", "qwen2"):
        heads, width = f.whole("num_attention_heads"), f.whole("hidden_size")
        head_dim = f.whole("head_dim", None)
        if head_dim not in (None, width // heads):
            raise ModelFormatError(
                f"config.json: head_dim {head_dim} != hidden_size / heads is not supported"
            )
        if kind == "mistral" and hf.get("sliding_window"):
            raise ModelFormatError(
                "config.json: Mistral's sliding-window attention is not supported"
            )
        attention_bias = f.flag("attention_bias", False)
        return ModelConfig(
            name=name,
            vocab_size=f.whole("vocab_size"),
            context_length=f.whole("max_position_embeddings"),
            n_layer=f.whole("num_hidden_layers"),
            n_head=heads,
            n_kv_head=f.whole("num_key_value_heads", None) or heads,
            d_model=width,
            d_ff=f.whole("intermediate_size"),
            position="rope",
            norm="rmsnorm",
            mlp="swiglu",
            norm_eps=f.real("rms_norm_eps", 1e-6),
            rope_base=_rope_base(f),
            rope_scaling=_rope_scaling(f),
            qkv_bias=kind == "qwen2" or attention_bias,
            out_bias=attention_bias and kind != "qwen2",
            tie_embeddings=f.flag("tie_word_embeddings", False),
        )
    if kind == "gpt_neox":
        return _gpt_neox(f, name)
    if kind in ("qwen3", "olmo2"):
        return _qwen3_olmo2(f, kind, name)
    if kind in ("gemma2", "gemma3_text"):
        return _gemma(f, kind, name)
    supported = ", ".join(sorted(RULES))
    hint = " (Gemma 3's multimodal 'gemma3' folders: only the text model, 'gemma3_text')"
    raise ModelFormatError(
        f"config.json: architecture {_short(kind)} is not supported (supported: {supported})"
        + (hint if kind == "gemma3" else "")
    )


def _gpt_neox(f: _Fields, name: str) -> ModelConfig:
    params = f.section("rope_parameters")
    if params.get("partial_rotary_factor") is not None:
        fraction = _Fields(params).real("partial_rotary_factor", 0.25)
    else:
        fraction = f.real("rotary_pct", 0.25)  # transformers' default, Pythia's value
    if not f.flag("attention_bias", True):
        raise ModelFormatError(
            "config.json: GPT-NeoX without attention biases is not supported (its MLP keeps them)"
        )
    activation = f.hf.get("hidden_act", "gelu")
    if activation not in ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh"):
        raise ModelFormatError(f"config.json: hidden_act {_short(activation)} is not supported")
    return ModelConfig(
        name=name,
        vocab_size=f.whole("vocab_size"),
        context_length=f.whole("max_position_embeddings"),
        n_layer=f.whole("num_hidden_layers"),
        n_head=f.whole("num_attention_heads"),
        d_model=f.whole("hidden_size"),
        d_ff=f.whole("intermediate_size"),
        position="rope",
        norm="layernorm",
        mlp="gelu",
        gelu_approximate="none" if activation == "gelu" else "tanh",
        norm_eps=f.real("layer_norm_eps", 1e-5),
        rope_base=_rope_base(f, old_key="rotary_emb_base"),
        rope_scaling=_rope_scaling(f),
        rotary_fraction=fraction,
        parallel_residual=f.flag("use_parallel_residual", True),
        qkv_bias=f.flag("attention_bias", True),
        out_bias=True,
        tie_embeddings=f.flag("tie_word_embeddings", False),
    )


def _llama_like(f: _Fields, name: str, **kw: Any) -> ModelConfig:
    """The fields Llama, Qwen3, OLMo 2 and Gemma 3 share (none of them has attention
    biases in published models; with them, our one bias switch would add MLP biases too)."""
    if f.flag("attention_bias", False):
        raise ModelFormatError(
            f"config.json: {f.hf.get('model_type')} with attention biases is not supported"
        )
    return ModelConfig(
        name=name,
        vocab_size=f.whole("vocab_size"),
        context_length=f.whole("max_position_embeddings"),
        n_layer=f.whole("num_hidden_layers"),
        n_head=f.whole("num_attention_heads"),
        n_kv_head=f.whole("num_key_value_heads", None) or f.whole("num_attention_heads"),
        d_model=f.whole("hidden_size"),
        d_ff=f.whole("intermediate_size"),
        position="rope",
        norm="rmsnorm",
        norm_eps=f.real("rms_norm_eps", 1e-6),
        qkv_bias=f.flag("attention_bias", False),
        out_bias=f.flag("attention_bias", False),
        **kw,
    )


def _qwen3_olmo2(f: _Fields, kind: str, name: str) -> ModelConfig:
    if f.hf.get("use_sliding_window"):
        raise ModelFormatError(f"config.json: {kind}'s sliding-window attention is not supported")
    if f.hf.get("hidden_act", "silu") != "silu":
        raise ModelFormatError(
            f"config.json: hidden_act {_short(f.hf.get('hidden_act'))} is not supported"
        )
    return _llama_like(
        f,
        name,
        # transformers' defaults when the file omits it: Qwen3 128, OLMo 2 width / heads
        head_size=f.whole("head_dim", 128 if kind == "qwen3" else None),
        mlp="swiglu",
        rope_base=_rope_base(f),
        rope_scaling=_rope_scaling(f),
        qk_norm="head" if kind == "qwen3" else "full",
        norm_placement="pre" if kind == "qwen3" else "post",
        tie_embeddings=f.flag("tie_word_embeddings", False),
    )


def _gemma(f: _Fields, kind: str, name: str) -> ModelConfig:
    """Gemma 2 and 3: sandwich norms, GeGLU, scaled embeddings, sliding and global layers;
    Gemma 3 adds QK-norm and a second RoPE base for its sliding layers."""
    gemma3 = kind == "gemma3_text"
    activation = f.hf.get("hidden_activation") or f.hf.get("hidden_act") or "gelu_pytorch_tanh"
    if activation not in ("gelu_pytorch_tanh", "gelu"):
        raise ModelFormatError(f"config.json: activation {_short(activation)} is not supported")
    n_layer = f.whole("num_hidden_layers")
    raw_types = f.hf.get("layer_types")
    if raw_types is None:  # older files: every `sliding_window_pattern`-th layer is global
        pattern = (
            f.whole("sliding_window_pattern", None)
            or f.whole("_sliding_window_pattern", None)
            or (6 if gemma3 else 2)
        )
        raw_types = [
            "full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
            for i in range(n_layer)
        ]
    names = {"full_attention": "full", "sliding_attention": "sliding"}
    if not isinstance(raw_types, list) or any(t not in names for t in raw_types):
        raise ModelFormatError(
            f"config.json: layer_types {_short(raw_types)} is not a list of "
            "'full_attention' and 'sliding_attention'"
        )
    for layer_type in ("full_attention", "sliding_attention"):
        if _rope_scaling(f, layer_type) is not None:
            raise ModelFormatError(f"config.json: {kind}'s RoPE scaling is not supported")
    if f.hf.get("use_bidirectional_attention"):
        raise ModelFormatError(
            "config.json: bidirectional attention (an embedding model, not a language model) "
            "is not supported"
        )
    scalar = f.real("query_pre_attn_scalar", 256.0)  # transformers' default
    if scalar <= 0:
        raise ModelFormatError(f"config.json: query_pre_attn_scalar = {scalar:g} is not positive")
    if gemma3:
        bases = {
            "rope_base": _rope_base(f, "full_attention", default=1e6),
            "rope_local_base": _rope_base(
                f, "sliding_attention", old_key="rope_local_base_freq", default=1e4
            ),
        }
    else:
        bases = {"rope_base": _rope_base(f)}
    return _llama_like(
        f,
        name,
        head_size=f.whole("head_dim", 256),
        mlp="geglu",
        gelu_approximate="tanh" if activation == "gelu_pytorch_tanh" else "none",
        **bases,
        qk_norm="head" if gemma3 else "none",
        norm_placement="sandwich",
        embed_multiplier=float(f.whole("hidden_size")) ** 0.5,
        attn_scale=scalar**-0.5,
        layer_types=tuple(names[t] for t in raw_types),
        sliding_window=f.whole("sliding_window", 4096),  # transformers' default
        # Gemma 3 keeps the field but no longer caps attention scores (nor does transformers).
        attn_softcap=None if gemma3 else _optional(f, "attn_logit_softcapping"),
        final_softcap=_optional(f, "final_logit_softcapping"),
        tie_embeddings=f.flag("tie_word_embeddings", True),
    )


def _optional(f: _Fields, key: str) -> float | None:
    return None if f.hf.get(key) is None else f.real(key, 0.0)


def _shape_copy(parts: list[tuple[int, ...]]) -> tuple[int, ...]:
    return parts[0]


def _shape_t(parts: list[tuple[int, ...]]) -> tuple[int, ...]:
    if len(parts[0]) != 2:
        raise ValueError(f"expected a matrix, found the shape {parts[0]}")
    return parts[0][1], parts[0][0]


def _shape_cat(parts: list[tuple[int, ...]]) -> tuple[int, ...]:
    first = parts[0]
    if not first or any(len(p) != len(first) or p[1:] != first[1:] for p in parts):
        raise ValueError(f"the shapes {', '.join(map(str, parts))} cannot be stacked")
    return (sum(p[0] for p in parts), *first[1:])


_SHAPE_OPS = {
    "copy": _shape_copy,
    "t": _shape_t,
    "cat_t": lambda parts: _shape_t([_shape_cat(parts)]),
    "cat": _shape_cat,
    "plus1": _shape_copy,
    "neox_t": _shape_t,
    "neox": _shape_copy,
}


def plan_shapes(
    shapes: Mapping[str, tuple[int, ...]],
    rules: tuple[Rule, ...],
    config: ModelConfig,
    targets: set[str],
) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The shapes apply_rules would produce, and the source names it would read.

    Computed from the sources' shapes alone, so that a file whose tensors do not fit its
    config is refused before anything is read. Raises ModelFormatError naming the tensors.
    """
    out: dict[str, tuple[int, ...]] = {}
    used: set[str] = set()
    for name, names, op in wanted(rules, config, targets, shapes):
        try:
            out[name] = _SHAPE_OPS[op]([tuple(shapes[s]) for s in names])
        except ValueError as e:
            raise ModelFormatError(f"{', '.join(names)} cannot make {name}: {e}") from None
        used.update(names)
    return out, used


def wanted(
    rules: tuple[Rule, ...], config: ModelConfig, targets: set[str], available: Mapping[str, Any]
) -> Iterator[tuple[str, list[str], str]]:
    """(our tensor name, its source names, op) for each rule's tensor in `targets`, layer by
    layer; raises ModelFormatError when a source is not in `available`."""
    for target, sources, op in rules:
        layers = range(config.n_layer) if "{i}" in target else [None]
        for i in layers:
            name = target.format(i=i) if i is not None else target
            if name not in targets:
                continue
            names = [
                _first_present(s.format(i=i) if i is not None else s, available) for s in sources
            ]
            missing = [s for s in names if s not in available]
            if missing:
                raise ModelFormatError(f"the checkpoint lacks {', '.join(missing)} (for {name})")
            yield name, names, op


def _first_present(source: str, available: Mapping[str, Any]) -> str:
    """A source written "a|b" is whichever of its names the checkpoint has (the first if none:
    then it is reported missing)."""
    if "|" not in source:
        return source
    names = source.split("|")
    return next((n for n in names if n in available), names[0])


def convert_state_dict(
    hf_state: Mapping[str, torch.Tensor],
    model_type: str,
    config: ModelConfig,
    targets: set[str],
    *,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Our tensors (named as in `targets`, our model's state-dict keys) from Hugging Face ones."""
    try:
        rules = RULES[model_type]
    except KeyError:
        supported = ", ".join(sorted(RULES))
        raise ModelFormatError(
            f"architecture {model_type!r} is not supported (supported: {supported})"
        ) from None
    return apply_rules(hf_state, rules, config, targets, progress=progress)


def apply_rules(
    source: Mapping[str, torch.Tensor],
    rules: tuple[Rule, ...],
    config: ModelConfig,
    targets: set[str],
    *,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Build each of our tensors in `targets` from `source` tensors by a rule table.

    `source` may be any mapping, including one that reads (and dequantizes) a tensor only
    when it is looked up, so that a file's tensors are converted one at a time; a mapping of
    meta tensors gives the shapes the conversion would produce, at no cost. `progress`
    reports each tensor (see tokenscope.lm.progress).
    """
    out: dict[str, torch.Tensor] = {}
    total = len(targets)
    for name, names, op in wanted(rules, config, targets, source):
        if progress:
            report("converting the weights", len(out), total)
        out[name] = _OPS[op]([source[s] for s in names], config).contiguous()
    return out
