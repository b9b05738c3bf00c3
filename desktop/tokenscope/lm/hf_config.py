"""A Hugging Face config.json read into our ModelConfig, whichever family wrote it.

    config = config_from_hf(json.loads(text), name="my-model")

GPT-2, Llama (and Mistral, Qwen2), GPT-NeoX (Pythia), Qwen3, OLMo 2 and Gemma 1-3 configs map
onto the one Transformer's variants; every field is read through `_Fields`, so a missing or
ill-typed value names the field and what was expected (a hostile config never reaches torch).
The tensors that go with it: tokenscope.lm.hf_names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any, overload

from tokenscope.lm.config import ROPE_SCALING_KEYS, ModelConfig
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.hf_names import RULES


class _Fields:
    """Typed reads of config.json fields; each problem names the field and what was expected.

    Ranges are ModelConfig's; here only types, so that a string or a list where a number
    belongs is named as such instead of surfacing as a TypeError inside the model.
    """

    def __init__(self, hf: Mapping[str, Any]) -> None:
        self.hf = hf

    def _get(self, key: str, default: float | EllipsisType | None) -> Any:
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
