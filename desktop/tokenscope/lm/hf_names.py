"""Hugging Face checkpoints mapped onto our one Transformer: the tensor names (the config
fields are tokenscope.lm.hf_config).

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
