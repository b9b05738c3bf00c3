"""Hugging Face checkpoints mapped onto our one Transformer: config fields and tensor names.

The tables are data. Each rule names one of our tensors, the Hugging Face tensors it is made
from ("{i}" is the layer) and how:

    copy      same layout
    t         nn.Linear's (out, in) transposed to our (in, out)
    cat_t     several (out, in) matrices stacked along "out", then transposed (q, k, v -> qkv)
    cat       several vectors concatenated (the biases of q, k, v)

A rule whose target our model does not have (a bias the config turns off, the head of a
tied model) is skipped; a needed source that is missing is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tokenscope.lm.config import ModelConfig
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
}
"""GGUF `general.architecture` values Tokenscope loads and how (Mistral 7B is "llama")."""


RULES: dict[str, tuple[Rule, ...]] = {
    "gpt2": GPT2_RULES,
    "llama": LLAMA_RULES,
    "mistral": LLAMA_RULES,
    "qwen2": LLAMA_RULES,
}

_OPS = {
    "copy": lambda ts: ts[0],
    "t": lambda ts: ts[0].t(),
    "cat_t": lambda ts: torch.cat(ts, dim=0).t(),
    "cat": lambda ts: torch.cat(ts, dim=0),
}


def _rope_base(hf: Mapping[str, Any]) -> float:
    params = hf.get("rope_parameters") or {}
    return float(params.get("rope_theta") or hf.get("rope_theta") or 10000.0)


def _rope_scaling(hf: Mapping[str, Any]) -> dict[str, float] | None:
    scaling = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind in (None, "default"):
        return None
    if kind != "llama3":
        raise ModelFormatError(f"RoPE scaling {kind!r} is not supported (supported: llama3)")
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    values = [float(scaling[k]) for k in keys]
    return dict(
        zip(
            ("factor", "low_freq_factor", "high_freq_factor", "original_context_length"),
            values,
            strict=True,
        )
    )


def config_from_hf(hf: Mapping[str, Any], name: str = "custom") -> ModelConfig:
    """Our ModelConfig for a Hugging Face config.json dict."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        activation = hf.get("activation_function", "gelu_new")
        return ModelConfig(
            name=name,
            vocab_size=hf["vocab_size"],
            context_length=hf["n_positions"],
            n_layer=hf["n_layer"],
            n_head=hf["n_head"],
            d_model=hf["n_embd"],
            d_ff=hf.get("n_inner"),
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            gelu_approximate="tanh" if activation in ("gelu_new", "gelu_pytorch_tanh") else "none",
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )
    if kind in ("llama", "mistral", "qwen2"):
        heads, width = hf["num_attention_heads"], hf["hidden_size"]
        if hf.get("head_dim") not in (None, width // heads):
            raise ModelFormatError(
                f"head_dim {hf['head_dim']} != hidden_size / heads is not supported"
            )
        if kind == "mistral" and hf.get("sliding_window"):
            raise ModelFormatError("Mistral's sliding-window attention is not supported")
        return ModelConfig(
            name=name,
            vocab_size=hf["vocab_size"],
            context_length=hf["max_position_embeddings"],
            n_layer=hf["num_hidden_layers"],
            n_head=heads,
            n_kv_head=hf.get("num_key_value_heads") or heads,
            d_model=width,
            d_ff=hf["intermediate_size"],
            position="rope",
            norm="rmsnorm",
            mlp="swiglu",
            norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_base=_rope_base(hf),
            rope_scaling=_rope_scaling(hf),
            qkv_bias=kind == "qwen2" or bool(hf.get("attention_bias", False)),
            out_bias=bool(hf.get("attention_bias", False)) and kind != "qwen2",
            tie_embeddings=hf.get("tie_word_embeddings", False),
        )
    supported = ", ".join(sorted(RULES))
    raise ModelFormatError(f"architecture {kind!r} is not supported (supported: {supported})")


def convert_state_dict(
    hf_state: Mapping[str, torch.Tensor],
    model_type: str,
    config: ModelConfig,
    targets: set[str],
) -> dict[str, torch.Tensor]:
    """Our tensors (named as in `targets`, our model's state-dict keys) from Hugging Face ones."""
    try:
        rules = RULES[model_type]
    except KeyError:
        supported = ", ".join(sorted(RULES))
        raise ModelFormatError(
            f"architecture {model_type!r} is not supported (supported: {supported})"
        ) from None
    return apply_rules(hf_state, rules, config, targets)


def apply_rules(
    source: Mapping[str, torch.Tensor],
    rules: tuple[Rule, ...],
    config: ModelConfig,
    targets: set[str],
) -> dict[str, torch.Tensor]:
    """Build each of our tensors in `targets` from `source` tensors by a rule table.

    `source` may be any mapping, including one that reads (and dequantizes) a tensor only
    when it is looked up, so that a file's tensors are converted one at a time.
    """
    out: dict[str, torch.Tensor] = {}
    total = len(targets)
    for target, sources, op in rules:
        layers = range(config.n_layer) if "{i}" in target else [None]
        for i in layers:
            name = target.format(i=i) if i is not None else target
            if name not in targets:
                continue
            report("converting the weights", len(out), total)
            names = [s.format(i=i) if i is not None else s for s in sources]
            missing = [s for s in names if s not in source]
            if missing:
                raise ModelFormatError(f"the checkpoint lacks {', '.join(missing)} (for {name})")
            out[name] = _OPS[op]([source[s] for s in names]).contiguous()
    return out
