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

from collections.abc import Iterator, Mapping
from typing import Any

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

    def whole(self, key: str, default: Any = ...) -> int | None:
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


def _rope_base(f: _Fields) -> float:
    params = f.section("rope_parameters")  # newer transformers keep rope_theta here
    if params.get("rope_theta") is not None:
        return _Fields(params).real("rope_theta", 10000.0)
    return f.real("rope_theta", 10000.0)


def _rope_scaling(f: _Fields) -> dict[str, float] | None:
    scaling = f.section("rope_scaling") or f.section("rope_parameters")
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
    supported = ", ".join(sorted(RULES))
    raise ModelFormatError(
        f"config.json: architecture {_short(kind)} is not supported (supported: {supported})"
    )


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
            names = [s.format(i=i) if i is not None else s for s in sources]
            missing = [s for s in names if s not in available]
            if missing:
                raise ModelFormatError(f"the checkpoint lacks {', '.join(missing)} (for {name})")
            yield name, names, op


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
        out[name] = _OPS[op]([source[s] for s in names]).contiguous()
    return out
