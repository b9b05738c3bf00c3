"""Helpers for the format tests: tiny Hugging Face models written as GGUF files, as llama.cpp's
converter writes them (Q/K rows permuted for llama, GPT-2's Conv1D weights transposed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

from tokenscope.lm import Tokenizer

F32 = GGMLQuantizationType.F32


def permute_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter: HF row h*hs + j*hs/2 + i goes to row h*hs + 2i + j."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_tensors(hf, permute: bool) -> dict[str, np.ndarray]:
    c = hf.config
    sd = {k: v.detach().float().numpy() for k, v in hf.state_dict().items()}
    out = {"token_embd.weight": sd["model.embed_tokens.weight"]}
    for i in range(c.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        if permute:
            q = permute_rows(q, c.num_attention_heads)
            k = permute_rows(k, c.num_key_value_heads)
        out |= {
            b + "attn_norm.weight": sd[p + "input_layernorm.weight"],
            b + "attn_q.weight": q,
            b + "attn_k.weight": k,
            b + "attn_v.weight": sd[p + "self_attn.v_proj.weight"],
            b + "attn_output.weight": sd[p + "self_attn.o_proj.weight"],
            b + "ffn_norm.weight": sd[p + "post_attention_layernorm.weight"],
            b + "ffn_gate.weight": sd[p + "mlp.gate_proj.weight"],
            b + "ffn_up.weight": sd[p + "mlp.up_proj.weight"],
            b + "ffn_down.weight": sd[p + "mlp.down_proj.weight"],
        }
        for x in "qkv":
            if p + f"self_attn.{x}_proj.bias" in sd:
                out[b + f"attn_{x}.bias"] = sd[p + f"self_attn.{x}_proj.bias"]
    out["output_norm.weight"] = sd["model.norm.weight"]
    if not c.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    return out


def _gpt2_tensors(hf) -> dict[str, np.ndarray]:
    c = hf.config
    sd = {k: v.detach().float().numpy() for k, v in hf.state_dict().items()}
    out = {
        "token_embd.weight": sd["transformer.wte.weight"],
        "position_embd.weight": sd["transformer.wpe.weight"],
        "output_norm.weight": sd["transformer.ln_f.weight"],
        "output_norm.bias": sd["transformer.ln_f.bias"],
        # The converter writes GPT-2's tied head a second time.
        "output.weight": sd["lm_head.weight"],
    }
    for i in range(c.n_layer):
        p, b = f"transformer.h.{i}.", f"blk.{i}."
        out |= {
            b + "attn_norm.weight": sd[p + "ln_1.weight"],
            b + "attn_norm.bias": sd[p + "ln_1.bias"],
            b + "attn_qkv.weight": sd[p + "attn.c_attn.weight"].T,
            b + "attn_qkv.bias": sd[p + "attn.c_attn.bias"],
            b + "attn_output.weight": sd[p + "attn.c_proj.weight"].T,
            b + "attn_output.bias": sd[p + "attn.c_proj.bias"],
            b + "ffn_norm.weight": sd[p + "ln_2.weight"],
            b + "ffn_norm.bias": sd[p + "ln_2.bias"],
            b + "ffn_up.weight": sd[p + "mlp.c_fc.weight"].T,
            b + "ffn_up.bias": sd[p + "mlp.c_fc.bias"],
            b + "ffn_down.weight": sd[p + "mlp.c_proj.weight"].T,
            b + "ffn_down.bias": sd[p + "mlp.c_proj.bias"],
        }
    return out


def add_tokenizer(
    w: GGUFWriter, tokenizer: Tokenizer, pre: str = "gpt-2", chat_template: str | None = None
) -> None:
    """Byte-level BPE metadata from one of our tokenizers, as llama.cpp's converter writes it."""
    spec = json.loads(tokenizer.to_str())
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    types = [3 if tokenizer.is_special(i) else 1 for i in range(len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if tokenizer.eos_id is not None:
        w.add_eos_token_id(tokenizer.eos_id)
        w.add_bos_token_id(tokenizer.eos_id)
    w.add_add_bos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)


def write_gguf(
    path,
    hf,
    tokenizer: Tokenizer,
    *,
    qtype: GGMLQuantizationType = F32,
    raw: dict[str, tuple[np.ndarray, GGMLQuantizationType]] | None = None,
    extra: dict | None = None,
    tensors: dict[str, np.ndarray] | None = None,
    chat_template: str | None = None,
    types: dict[str, GGMLQuantizationType] | None = None,
):
    """Write `hf` (a transformers model) as a GGUF file; 2-D weights stored as `qtype`
    (or as `types` says for a tensor by name).

    `raw` replaces tensors by ready-made bytes of a type (for K-quants, which gguf cannot
    quantize); `tensors` adds float32 tensors (e.g. rope_freqs). Returns the path.
    """
    kind = hf.config.model_type
    arch = {"llama": "llama", "qwen2": "qwen2", "gpt2": "gpt2"}[kind]
    w = GGUFWriter(str(path), arch)
    c = hf.config
    if kind == "gpt2":
        weights = _gpt2_tensors(hf)
        w.add_context_length(c.n_positions)
        w.add_embedding_length(c.n_embd)
        w.add_feed_forward_length(c.n_inner or 4 * c.n_embd)
        w.add_block_count(c.n_layer)
        w.add_head_count(c.n_head)
        w.add_layer_norm_eps(c.layer_norm_epsilon)
    else:
        weights = _llama_tensors(hf, permute=kind == "llama")
        w.add_context_length(c.max_position_embeddings)
        w.add_embedding_length(c.hidden_size)
        w.add_feed_forward_length(c.intermediate_size)
        w.add_block_count(c.num_hidden_layers)
        w.add_head_count(c.num_attention_heads)
        w.add_head_count_kv(c.num_key_value_heads)
        w.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
        w.add_layer_norm_rms_eps(c.rms_norm_eps)
        w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_name(f"tiny-{kind}")
    add_tokenizer(w, tokenizer, chat_template=chat_template)
    for key, value in (extra or {}).items():
        w.add_key_value(key, value[0], value[1])
    for name, value in {**weights, **(tensors or {})}.items():
        if raw and name in raw:
            data, raw_type = raw[name]
            w.add_tensor(name, data, raw_dtype=raw_type)  # rows of bytes, as NumPy holds them
        elif value.ndim == 2 and (types or {}).get(name, qtype) != F32:
            kind = (types or {}).get(name, qtype)
            data = quantize(value, kind)  # float16 for F16, rows of block bytes otherwise
            w.add_tensor(name, data, raw_dtype=kind if data.dtype == np.uint8 else None)
        else:
            w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def hf_models(bpe_tokenizer):
    """Tiny random transformers models sized for our test tokenizer: name -> model."""
    import transformers

    torch.manual_seed(0)
    vocab = bpe_tokenizer.vocab_size
    llama = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=50000.0,
    )
    models = {
        "llama": transformers.LlamaForCausalLM(transformers.LlamaConfig(**llama)),
        "llama-tied": transformers.LlamaForCausalLM(
            transformers.LlamaConfig(**llama, tie_word_embeddings=True)
        ),
        "qwen2": transformers.Qwen2ForCausalLM(
            transformers.Qwen2Config(**llama, tie_word_embeddings=True)
        ),
        "gpt2": transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                vocab_size=vocab,
                n_positions=128,
                n_embd=64,
                n_layer=2,
                n_head=4,
                bos_token_id=0,
                eos_token_id=0,
            )
        ),
        "gpt_neox": transformers.GPTNeoXForCausalLM(
            transformers.GPTNeoXConfig(
                vocab_size=vocab,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=128,
                rotary_pct=0.25,
            )
        ),
        "qwen3": transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**llama, head_dim=32)),
        "olmo2": transformers.Olmo2ForCausalLM(transformers.Olmo2Config(**llama)),
        "gemma3_text": transformers.Gemma3ForCausalLM(
            transformers.Gemma3TextConfig(
                **{**llama, "num_hidden_layers": 3},
                head_dim=32,
                sliding_window=8,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            )
        ),
    }
    with torch.no_grad():
        for model in models.values():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)  # give biases and norms values of their own
            model.eval()
    return models


def one_layer_llama(tokenizer, width: int, ffn: int, heads: int, kv_heads: int, seed: int):
    """A one-layer, tied transformers Llama of this width, random weights from `seed`."""
    import transformers

    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=width, intermediate_size=ffn,
            num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=kv_heads,
            max_position_embeddings=64, tie_word_embeddings=True,
        )
    ).eval()  # fmt: skip


@pytest.fixture(scope="session")
def wide_llama(bpe_tokenizer):
    """A one-layer llama 256 wide: K-quant blocks span 256 weights."""
    return one_layer_llama(bpe_tokenizer, 256, 512, heads=4, kv_heads=2, seed=1)
