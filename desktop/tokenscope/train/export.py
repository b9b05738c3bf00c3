"""Export a model as a Hugging Face folder that other tools load (GPT-2 or Llama layout).

    config.json        model_type "gpt2" (GPT2LMHeadModel) or "llama" (LlamaForCausalLM)
    model.safetensors  tensors under Hugging Face's names, in nn.Linear's (out, in) layout
    tokenizer.json     the model's tokenizer

The name mapping is the inverse of tokenscope.lm.hf_names, so the two cannot drift apart:
a test loads the export in `transformers` and compares logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from tokenscope.files import atomic_write_text
from tokenscope.lm.config import ModelConfig
from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.hf_names import RULES
from tokenscope.lm.language_model import LanguageModel


def _family(c: ModelConfig) -> str:
    if c.mlp == "none":
        raise TokenscopeError(
            "an attention-only model (no MLP) has no GPT-2 or Llama counterpart to export to; "
            "it opens in Tokenscope as it is"
        )
    if not c.classic:
        raise TokenscopeError(
            "only GPT-2-style and Llama-style models can be exported; this one has later "
            "variants (QK-norm, extra norms, sliding windows, partial rotary, ...) that the "
            "Llama format would drop"
        )
    if (
        c.position == "learned"
        and c.norm == "layernorm"
        and c.mlp == "gelu"
        and c.qkv_bias
        and c.out_bias
        and c.kv_heads == c.n_head
    ):
        return "gpt2"
    if c.position == "rope" and c.norm == "rmsnorm" and c.mlp == "swiglu" and not c.out_bias:
        return "llama" if not c.qkv_bias else "qwen2"
    raise TokenscopeError(
        "only GPT-2-style (learned positions, LayerNorm, GELU, biases) and Llama-style "
        "(RoPE, RMSNorm, SwiGLU, no output biases) models can be exported; this one mixes them"
    )


def _hf_config(c: ModelConfig, family: str) -> dict:
    if family == "gpt2":
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.vocab_size,
            "n_positions": c.context_length,
            "n_embd": c.d_model,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_inner": c.ffn_dim,
            "activation_function": "gelu_new" if c.gelu_approximate == "tanh" else "gelu",
            "layer_norm_epsilon": c.norm_eps,
            "tie_word_embeddings": c.tie_embeddings,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        }
    config = {
        "architectures": ["Qwen2ForCausalLM" if family == "qwen2" else "LlamaForCausalLM"],
        "model_type": family,
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_base,
        "tie_word_embeddings": c.tie_embeddings,
        "hidden_act": "silu",
    }
    if family == "llama":
        config["attention_bias"] = False
        config["mlp_bias"] = False
    if c.rope_scaling:
        s = c.rope_scaling
        config["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": s["factor"],
            "low_freq_factor": s["low_freq_factor"],
            "high_freq_factor": s["high_freq_factor"],
            "original_max_position_embeddings": int(s["original_context_length"]),
        }
    return config


def _split_sizes(target: str, c: ModelConfig, n_sources: int) -> list[int]:
    if ".qkv." in target:
        kv = c.kv_heads * c.head_dim
        return [c.n_head * c.head_dim, kv, kv]
    if ".gate_up." in target:
        return [c.ffn_dim, c.ffn_dim]
    raise AssertionError(f"no split rule for {target} ({n_sources} sources)")


def hf_state_dict(model: LanguageModel, family: str) -> dict[str, torch.Tensor]:
    """Our tensors under Hugging Face names, by running the import rules backwards."""
    c = model.config
    ours = model.transformer.state_dict()
    out: dict[str, torch.Tensor] = {}
    for target, sources, op in RULES[family]:
        layers = range(c.n_layer) if "{i}" in target else [None]
        for i in layers:
            name = target.format(i=i) if i is not None else target
            if name not in ours:
                continue
            names = [s.format(i=i) if i is not None else s for s in sources]
            tensor = ours[name].detach().cpu()
            if op == "copy":
                parts = [tensor]
            elif op == "t":
                parts = [tensor.t()]
            elif op == "cat_t":
                parts = list(tensor.t().split(_split_sizes(name, c, len(names)), dim=0))
            else:  # "cat"
                parts = list(tensor.split(_split_sizes(name, c, len(names)), dim=0))
            for hf_name, part in zip(names, parts, strict=True):
                out[hf_name] = part.contiguous().clone()
    return out


def export_hugging_face(model: LanguageModel, folder: str | Path) -> Path:
    """Write `model` as a Hugging Face folder; returns the folder."""
    from tokenscope.lm.packed import is_packed

    if is_packed(model.transformer):
        raise ValueError(
            f"{model.name} holds packed weights ({model.packing}), which a Hugging Face folder "
            "cannot store; load it with dtype='float32' to export it"
        )
    family = _family(model.config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = _hf_config(model.config, family)
    config["bos_token_id"] = model.tokenizer.bos_id
    config["eos_token_id"] = model.tokenizer.eos_id
    config["torch_dtype"] = "float32"
    save_file(
        hf_state_dict(model, family), str(folder / "model.safetensors"), metadata={"format": "pt"}
    )
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2))
    model.tokenizer.save(folder / "tokenizer.json")
    return folder
