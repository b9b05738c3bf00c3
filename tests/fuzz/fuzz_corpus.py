"""The seed files the fuzzer mutates: tiny models built here, in every format Tokenscope reads.

    native-gpt2, native-llama   Tokenscope checkpoint folders (config.json, model.safetensors,
                                tokenizer.json)
    hf-llama, hf-gpt2           Hugging Face folders (config.json with model_type, weights named
                                as transformers names them, tokenizer.json, tokenizer_config.json
                                with a chat template)
    gguf-llama-f32, gguf-llama-q8, gguf-gpt2
                                GGUF files as llama.cpp's converter writes them (Q/K rows
                                permuted for llama), with tokenizer metadata and a chat template

Everything comes from one byte-level BPE tokenizer trained on a short text and two random
Transformers, so building the corpus takes about a second and needs no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fuzz_formats import (
    ARRAY,
    BOOL,
    F32,
    STRING,
    U32,
    GGUFSpec,
    safetensors_parts,
    write_gguf,
    write_safetensors,
)
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize

from tokenscope.lm import LanguageModel, Tokenizer, Transformer, preset

TEXT = (
    "The capital of Indonesia is Jakarta. The capital of France is Paris.\n"
    "A language model predicts the next token. 语言模型预测下一个词。 👍🏽\n"
    "def add(a, b):\n\treturn a + b\n"
) * 8

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class Corpus:
    """Seed files on disk plus the data the structured mutations start from."""

    root: Path
    folders: dict[str, Path] = field(default_factory=dict)  # native-*, hf-*
    ggufs: dict[str, GGUFSpec] = field(default_factory=dict)
    gguf_files: dict[str, Path] = field(default_factory=dict)
    weights: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy()


def _permute_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter: HF row h*hs + j*hs/2 + i goes to row h*hs + 2i + j."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_parts(model: Transformer) -> dict[str, Any]:
    """Per-layer matrices in nn.Linear's (out, in) layout, named by role."""
    c = model.config
    sd = model.state_dict()
    q, kv = c.n_head * c.head_dim, c.kv_heads * c.head_dim
    f = c.ffn_dim
    layers = []
    for i in range(c.n_layer):
        qkv = _np(sd[f"blocks.{i}.attn.qkv.weight"]).T  # (q + 2kv, C)
        gate_up = _np(sd[f"blocks.{i}.mlp.gate_up.weight"]).T  # (2F, C)
        layers.append(
            {
                "attn_norm": _np(sd[f"blocks.{i}.attn_norm.weight"]),
                "q": qkv[:q],
                "k": qkv[q : q + kv],
                "v": qkv[q + kv :],
                "o": _np(sd[f"blocks.{i}.attn.out.weight"]).T,
                "mlp_norm": _np(sd[f"blocks.{i}.mlp_norm.weight"]),
                "gate": gate_up[:f],
                "up": gate_up[f:],
                "down": _np(sd[f"blocks.{i}.mlp.down.weight"]).T,
            }
        )
    return {
        "embed": _np(sd["embed.weight"]),
        "norm": _np(sd["final_norm.weight"]),
        "head": _np(sd["head.weight"]).T if "head.weight" in sd else None,
        "layers": layers,
    }


def _hf_llama(model: Transformer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    c, p = model.config, _llama_parts(model)
    tensors = {"model.embed_tokens.weight": p["embed"], "model.norm.weight": p["norm"]}
    for i, layer in enumerate(p["layers"]):
        a, m = f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        tensors |= {
            f"model.layers.{i}.input_layernorm.weight": layer["attn_norm"],
            f"model.layers.{i}.post_attention_layernorm.weight": layer["mlp_norm"],
            a + "q_proj.weight": layer["q"],
            a + "k_proj.weight": layer["k"],
            a + "v_proj.weight": layer["v"],
            a + "o_proj.weight": layer["o"],
            m + "gate_proj.weight": layer["gate"],
            m + "up_proj.weight": layer["up"],
            m + "down_proj.weight": layer["down"],
        }
    if p["head"] is not None:
        tensors["lm_head.weight"] = p["head"]
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.kv_heads,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_base,
        "rope_scaling": None,
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": False,
        "torch_dtype": "float32",
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    return config, tensors


def _hf_gpt2(model: Transformer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    c, sd = model.config, model.state_dict()
    tensors = {
        "wte.weight": _np(sd["embed.weight"]),
        "wpe.weight": _np(sd["pos_embed.weight"]),
        "ln_f.weight": _np(sd["final_norm.weight"]),
        "ln_f.bias": _np(sd["final_norm.bias"]),
    }
    names = {"attn_norm": "ln_1", "mlp_norm": "ln_2", "attn.qkv": "attn.c_attn",
             "attn.out": "attn.c_proj", "mlp.up": "mlp.c_fc", "mlp.down": "mlp.c_proj"}  # fmt: skip
    for i in range(c.n_layer):
        for ours, theirs in names.items():
            for part in ("weight", "bias"):
                tensors[f"h.{i}.{theirs}.{part}"] = _np(sd[f"blocks.{i}.{ours}.{part}"])
    config = {
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.context_length,
        "n_embd": c.d_model,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "layer_norm_epsilon": c.norm_eps,
        "activation_function": "gelu_new",
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    return config, tensors


def _tokenizer_metadata(spec: GGUFSpec, tok: Tokenizer) -> None:
    vocab = tok.backend.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    types = [3 if tok.is_special(i) else 1 for i in range(len(tokens))]
    spec.set("tokenizer.ggml.model", STRING, "gpt2")
    spec.set("tokenizer.ggml.pre", STRING, "gpt-2")
    spec.set("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    spec.set("tokenizer.ggml.token_type", ARRAY, (5, types))  # I32
    spec.set("tokenizer.ggml.merges", ARRAY, (STRING, merges))
    spec.set("tokenizer.ggml.bos_token_id", U32, tok.eos_id)
    spec.set("tokenizer.ggml.eos_token_id", U32, tok.eos_id)
    spec.set("tokenizer.ggml.add_bos_token", BOOL, False)
    spec.set("tokenizer.chat_template", STRING, CHAT_TEMPLATE)


def _tensor(name: str, array: np.ndarray, qtype: Q = Q.F32) -> tuple[str, list[int], int, bytes]:
    array = np.ascontiguousarray(array, dtype=np.float32)
    dims = list(reversed(array.shape))
    if qtype == Q.F32 or array.ndim == 1:
        return name, dims, int(Q.F32), array.tobytes()
    return name, dims, int(qtype), quantize(array, qtype).tobytes()


def _gguf_llama(model: Transformer, tok: Tokenizer, qtype: Q) -> GGUFSpec:
    c, p = model.config, _llama_parts(model)
    spec = GGUFSpec()
    spec.set("general.architecture", STRING, "llama")
    spec.set("general.name", STRING, "fuzz-llama")
    for key, kind, value in (
        ("llama.context_length", U32, c.context_length),
        ("llama.embedding_length", U32, c.d_model),
        ("llama.feed_forward_length", U32, c.ffn_dim),
        ("llama.block_count", U32, c.n_layer),
        ("llama.attention.head_count", U32, c.n_head),
        ("llama.attention.head_count_kv", U32, c.kv_heads),
        ("llama.rope.freq_base", F32, c.rope_base),
        ("llama.attention.layer_norm_rms_epsilon", F32, c.norm_eps),
        ("llama.rope.dimension_count", U32, c.head_dim),
    ):
        spec.set(key, kind, value)
    _tokenizer_metadata(spec, tok)
    spec.tensors.append(_tensor("token_embd.weight", p["embed"], qtype))
    for i, layer in enumerate(p["layers"]):
        b = f"blk.{i}."
        spec.tensors += [
            _tensor(b + "attn_norm.weight", layer["attn_norm"]),
            _tensor(b + "attn_q.weight", _permute_rows(layer["q"], c.n_head), qtype),
            _tensor(b + "attn_k.weight", _permute_rows(layer["k"], c.kv_heads), qtype),
            _tensor(b + "attn_v.weight", layer["v"], qtype),
            _tensor(b + "attn_output.weight", layer["o"], qtype),
            _tensor(b + "ffn_norm.weight", layer["mlp_norm"]),
            _tensor(b + "ffn_gate.weight", layer["gate"], qtype),
            _tensor(b + "ffn_up.weight", layer["up"], qtype),
            _tensor(b + "ffn_down.weight", layer["down"], qtype),
        ]
    spec.tensors.append(_tensor("output_norm.weight", p["norm"]))
    if p["head"] is not None:
        spec.tensors.append(_tensor("output.weight", p["head"], qtype))
    return spec


def _gguf_gpt2(model: Transformer, tok: Tokenizer) -> GGUFSpec:
    c, sd = model.config, model.state_dict()
    spec = GGUFSpec()
    spec.set("general.architecture", STRING, "gpt2")
    spec.set("general.name", STRING, "fuzz-gpt2")
    for key, value in (
        ("gpt2.context_length", c.context_length),
        ("gpt2.embedding_length", c.d_model),
        ("gpt2.feed_forward_length", c.ffn_dim),
        ("gpt2.block_count", c.n_layer),
        ("gpt2.attention.head_count", c.n_head),
    ):
        spec.set(key, U32, value)
    spec.set("gpt2.attention.layer_norm_epsilon", F32, c.norm_eps)
    _tokenizer_metadata(spec, tok)
    embed = _np(sd["embed.weight"])
    spec.tensors += [
        _tensor("token_embd.weight", embed),
        _tensor("position_embd.weight", _np(sd["pos_embed.weight"])),
        _tensor("output_norm.weight", _np(sd["final_norm.weight"])),
        _tensor("output_norm.bias", _np(sd["final_norm.bias"])),
        _tensor("output.weight", embed),  # the converter writes the tied head twice
    ]
    names = {"attn_norm": "attn_norm", "mlp_norm": "ffn_norm", "attn.qkv": "attn_qkv",
             "attn.out": "attn_output", "mlp.up": "ffn_up", "mlp.down": "ffn_down"}  # fmt: skip
    for i in range(c.n_layer):
        for ours, theirs in names.items():
            w = _np(sd[f"blocks.{i}.{ours}.weight"])
            spec.tensors.append(_tensor(f"blk.{i}.{theirs}.weight", w.T if w.ndim == 2 else w))
            spec.tensors.append(
                _tensor(f"blk.{i}.{theirs}.bias", _np(sd[f"blocks.{i}.{ours}.bias"]))
            )
    return spec


def _write_hf(folder: Path, config: dict, tensors: dict, tok: Tokenizer) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header, data = safetensors_parts(tensors)
    (folder / "model.safetensors").write_bytes(write_safetensors(header, data))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tok.save(folder / "tokenizer.json")
    special = "<|endoftext|>"
    tok_config = {"bos_token": special, "eos_token": special, "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 0}))


def build(root: Path) -> Corpus:
    """Write every seed under `root` (replacing what is there) and return the corpus."""
    root.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.train_bpe([TEXT], vocab_size=320)
    v = tok.vocab_size
    gpt2 = Transformer(preset("tiny", vocab_size=v)).init_weights(seed=1)
    llama = Transformer(preset("tiny-llama", vocab_size=v)).init_weights(seed=2)
    corpus = Corpus(root)
    for name, model in (("native-gpt2", gpt2), ("native-llama", llama)):
        corpus.folders[name] = LanguageModel(model, tok, name=name).save(root / name)
    for name, (config, tensors) in (("hf-llama", _hf_llama(llama)), ("hf-gpt2", _hf_gpt2(gpt2))):
        _write_hf(root / name, config, tensors, tok)
        corpus.folders[name] = root / name
        corpus.weights[name] = safetensors_parts(tensors)
    for name, model in (("native-gpt2", gpt2), ("native-llama", llama)):
        tensors = {k: _np(t) for k, t in model.state_dict().items()}
        corpus.weights[name] = safetensors_parts(tensors)
        # Rewritten by our writer so that structured mutations start from the same bytes.
        header, data = corpus.weights[name]
        header["__metadata__"] = {"format": "tokenscope-checkpoint"}
        (root / name / "model.safetensors").write_bytes(write_safetensors(header, data))
    corpus.ggufs = {
        "gguf-llama-f32": _gguf_llama(llama, tok, Q.F32),
        "gguf-llama-q8": _gguf_llama(llama, tok, Q.Q8_0),
        "gguf-gpt2": _gguf_gpt2(gpt2, tok),
    }
    for name, spec in corpus.ggufs.items():
        path = root / f"{name}.gguf"
        path.write_bytes(write_gguf(spec))
        corpus.gguf_files[name] = path
    return corpus
