"""Weights kept small in memory (tokenscope.lm.packed, gguf_packing): exact group decoding,
layers that compute what the float32 ones do, and GGUF files loaded without ever holding the
float32 model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize

from tokenscope.lm import load_model
from tokenscope.lm.formats.dequantize import groups
from tokenscope.lm.model import Dense
from tokenscope.lm.packed import (
    Fp16Linear,
    GroupEmbedding,
    Groups,
    HalfLinear,
    Int4Linear,
    SlicedHead,
    fp16_available,
    fp16_fits,
    int4_available,
)

from .conftest import write_gguf
from .test_gguf_model import _random_k_blocks

TEXT = "The capital of Indonesia is Jakarta. 语言模型 def add(a, b):"


def test_this_torch_has_the_kernels():
    # CI's torch (2.13 CPU, x86) has both; a build without them falls back to bfloat16, but
    # then the goals of this module do not hold, so say so here rather than pass silently.
    assert int4_available() and fp16_available()


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1])
def test_groups_decode_exactly(qtype):
    w = np.random.default_rng(3).normal(size=(48, 128)).astype(np.float32)
    raw = quantize(w, qtype)
    expected = gguf_dequantize(raw, qtype).reshape(w.shape)
    g = groups(raw, qtype, w.shape)
    assert g.bits == (8 if qtype == Q.Q8_0 else 4)
    np.testing.assert_array_equal(g.dequantize().numpy(), expected)
    assert int(g.q.min()) >= (-127 if qtype == Q.Q8_0 else 0)
    assert int(g.q.max()) <= (127 if qtype == Q.Q8_0 else 15)


def test_q4_k_groups_decode_exactly():
    raw = _random_k_blocks(Q.Q4_K, 16, 512, seed=4)
    expected = gguf_dequantize(raw, Q.Q4_K).reshape(16, 512)
    g = groups(raw, Q.Q4_K, (16, 512))
    np.testing.assert_array_equal(g.dequantize().numpy(), expected)
    assert g.q.dtype == torch.uint8 and int(g.q.max()) <= 15


def _bf16_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """What an exact kernel gives for bfloat16 activations: x rounded, sums in float32."""
    return x.to(torch.bfloat16).float() @ w.t()


@pytest.mark.parametrize("rows", [16, 40, 7])
def test_int4_layer_computes_the_groups_matrix(rows):
    torch.manual_seed(rows)
    g = Groups.quantize4(torch.randn(rows, 96))
    bias = torch.randn(rows)
    layer = Int4Linear(g, bias)
    x = torch.randn(2, 3, 96)
    y = layer(x)
    assert y.shape == (2, 3, rows) and y.dtype == torch.float32
    expected = _bf16_reference(x, g.dequantize()) + bias
    # The kernel's scales are bfloat16 and its output is rounded to bfloat16 (2^-8).
    size = expected.abs().max()
    assert (y - expected).abs().max() < 0.01 * size
    # A wrong group layout (e.g. rows out of order) is far off, not within that.
    wrong = _bf16_reference(x, g.dequantize().flip(0)) + bias
    assert (y - wrong).abs().max() > 0.1 * size


def test_rounding_to_four_bits_keeps_each_group_close():
    w = torch.randn(32, 64)
    g = Groups.quantize4(w)
    step = (w.view(32, 2, 32).amax(-1) - w.view(32, 2, 32).amin(-1)) / 15
    error = (g.dequantize() - w).abs().view(32, 2, 32).amax(-1)
    assert bool((error <= step / 2 + 1e-6).all())


def test_fp16_layer_and_its_padding_rule():
    torch.manual_seed(0)
    w, b = torch.randn(24, 64), torch.randn(24)
    x = torch.randn(5, 64)
    y = Fp16Linear(w, b)(x)
    assert torch.allclose(y, x @ w.half().float().t() + b, atol=1e-4)
    # fbgemm pads the input size to a multiple of 512 (measured 1.78x the bytes for 576).
    assert fp16_fits(512) and fp16_fits(1536) and fp16_fits(960)
    assert not fp16_fits(576) and not fp16_fits(64)


def test_group_embedding_returns_exact_rows():
    w = np.random.default_rng(5).normal(size=(40, 64)).astype(np.float32)
    raw = quantize(w, Q.Q8_0)
    emb = GroupEmbedding(groups(raw, Q.Q8_0, w.shape))
    ids = torch.tensor([[3, 0, 39]])
    expected = torch.from_numpy(gguf_dequantize(raw, Q.Q8_0).reshape(w.shape))[ids[0]]
    assert torch.equal(emb(ids)[0], expected)


def _llama_file(tmp_path, hf_models, tokenizer, name="llama", **kwargs):
    return write_gguf(tmp_path / f"{name}.gguf", hf_models[name], tokenizer, **kwargs)


def _max_prob_diff(a, b, tokenizer, text=TEXT) -> float:
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.inference_mode():
        pa = torch.softmax(a.transformer(ids).double(), -1)
        pb = torch.softmax(b.transformer(ids).double(), -1)
    return float((pa - pb).abs().max())


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1])
@pytest.mark.parametrize("name", ["llama", "llama-tied", "qwen2"])
def test_four_bit_files_load_packed_and_predict_as_float32(
    tmp_path, hf_models, bpe_tokenizer, qtype, name
):
    path = _llama_file(tmp_path, hf_models, bpe_tokenizer, name, qtype=qtype)
    packed, reference = load_model(path), load_model(path, dtype="float32")
    blocks = packed.transformer.blocks
    for layer in (
        blocks[0].attn.qkv,
        blocks[1].attn.out,
        blocks[0].mlp.gate_up,
        blocks[1].mlp.down,
    ):
        assert isinstance(layer, Int4Linear)
    assert isinstance(packed.transformer.embed, GroupEmbedding)  # 2-D, so quantized too
    assert isinstance(packed.transformer.output_layer, SlicedHead)
    assert "int4 g32" in packed.packing and packed.quantization == qtype.name
    assert reference.packing is None and isinstance(reference.transformer.blocks[0].attn.qkv, Dense)
    assert packed.parameter_count == reference.parameter_count
    # Each packed layer computes its float32 twin's output on the same input (Q/K rows in the
    # right order, q, k, v stacked in the right order, biases kept).
    x = torch.randn(4, packed.config.d_model)
    with torch.inference_mode():
        for i in range(packed.config.n_layer):
            ours, theirs = (
                packed.transformer.blocks[i].attn.qkv,
                reference.transformer.blocks[i].attn.qkv,
            )
            assert torch.allclose(ours(x), theirs(x), atol=0.05, rtol=0.02)
    assert _max_prob_diff(packed, reference, bpe_tokenizer) < 0.02


def test_q4_k_and_mixed_types_in_one_file(tmp_path, bpe_tokenizer, wide_llama):
    """Q4_K q (exact int4); a Q8_0 v makes the whole qkv float16; a Q6_K down is float16."""
    hf = wide_llama
    raw = {
        "blk.0.attn_q.weight": (_random_k_blocks(Q.Q4_K, 256, 256, 1), Q.Q4_K),
        "blk.0.attn_k.weight": (_random_k_blocks(Q.Q4_K, 128, 256, 2), Q.Q4_K),
        "blk.0.attn_output.weight": (_random_k_blocks(Q.Q4_K, 256, 256, 3), Q.Q4_K),
        "blk.0.ffn_down.weight": (_random_k_blocks(Q.Q6_K, 256, 512, 4), Q.Q6_K),
    }
    path = write_gguf(tmp_path / "k.gguf", hf, bpe_tokenizer, qtype=Q.Q8_0, raw=raw)
    packed, reference = load_model(path), load_model(path, dtype="float32")
    block, ref_block = packed.transformer.blocks[0], reference.transformer.blocks[0]
    assert isinstance(block.attn.out, Int4Linear)  # Q4_K alone: exact 4-bit groups
    assert not isinstance(block.attn.qkv, Int4Linear)  # q, k Q4_K but v Q8_0
    assert isinstance(block.mlp.down, (Fp16Linear, HalfLinear))
    x = torch.randn(3, 256)
    h = torch.randn(3, 512)
    with torch.inference_mode():
        pairs = [
            (block.attn.out(x), ref_block.attn.out(x)),
            (block.attn.qkv(x), ref_block.attn.qkv(x)),
            (block.mlp.down(h), ref_block.mlp.down(h)),
        ]
    for ours, theirs in pairs:
        assert (ours - theirs).abs().max() < 0.02 * theirs.abs().max()


def test_float32_files_stay_float32_under_auto(tmp_path, hf_models, bpe_tokenizer):
    path = _llama_file(tmp_path, hf_models, bpe_tokenizer)
    model = load_model(path)
    assert model.packing is None
    assert isinstance(model.transformer.blocks[0].attn.qkv, Dense)


def test_int4_on_request_for_float_files_and_checkpoints(tmp_path, hf_models, bpe_tokenizer):
    path = _llama_file(tmp_path, hf_models, bpe_tokenizer, qtype=Q.F16)
    model, reference = load_model(path, dtype="int4"), load_model(path, dtype="float32")
    assert isinstance(model.transformer.blocks[0].mlp.down, Int4Linear)
    assert _max_prob_diff(model, reference, bpe_tokenizer) < 0.05
    builtin = load_model("builtin", dtype="int4")
    assert isinstance(builtin.transformer.blocks[0].attn.qkv, Int4Linear)
    assert "rounded" in builtin.packing
    base = load_model("builtin")
    a = base.predict_next_token_probabilities("The capital of Indonesia is")
    b = builtin.predict_next_token_probabilities("The capital of Indonesia is")
    assert a.most_likely.token_id == b.most_likely.token_id
    assert abs(a.most_likely.probability - b.most_likely.probability) < 0.05


def test_bfloat16_multiplies_in_the_fast_layout():
    model = load_model("builtin", dtype="bfloat16")
    layer = model.transformer.blocks[0].mlp.down
    assert isinstance(layer, HalfLinear) and layer.weight.dtype == torch.bfloat16
    assert layer.weight.shape == (layer.out_features, layer.in_features)  # (out, in)
    base = load_model("builtin")
    a = base.predict_next_token_probabilities("The capital of France is")
    b = model.predict_next_token_probabilities("The capital of France is")
    assert a.most_likely.token_id == b.most_likely.token_id


def test_a_packed_model_refuses_to_be_saved_and_says_how(tmp_path, hf_models, bpe_tokenizer):
    model = load_model(_llama_file(tmp_path, hf_models, bpe_tokenizer, qtype=Q.Q4_0))
    with pytest.raises(ValueError, match="dtype='float32'"):
        model.save(tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("dtype", ["auto", "float32", "bfloat16", "int8", "int4"])
def test_loading_inside_inference_mode_leaves_a_usable_model(
    tmp_path, hf_models, bpe_tokenizer, dtype
):
    path = _llama_file(tmp_path, hf_models, bpe_tokenizer, "llama-tied", qtype=Q.Q4_1)
    with torch.inference_mode():
        model = load_model(path, dtype=dtype)
    # Outside inference mode, every entry point still runs (the tied head's cached copy
    # once read the version counter of an inference tensor and failed here).
    dist = model.predict_next_token_probabilities("The capital of")
    assert abs(float(dist.vector().sum()) - 1.0) < 1e-3
    assert len(list(model.generate("The capital of", max_tokens=3))) == 3
    assert np.isfinite(model.score("The capital of Indonesia").perplexity)


def test_every_weight_mode_is_accepted_and_nothing_else(tmp_path, hf_models, bpe_tokenizer):
    from tokenscope.lm.weight_modes import DTYPE_CHOICES

    path = _llama_file(tmp_path, hf_models, bpe_tokenizer, "llama-tied", qtype=Q.Q8_0)
    for dtype in DTYPE_CHOICES:
        assert load_model(path, dtype=dtype).config.n_layer == 2
    with pytest.raises(ValueError, match="dtype must be one of auto, float32"):
        load_model(path, dtype="int3")


def test_packed_models_export_only_through_float32(tmp_path, hf_models, bpe_tokenizer):
    from safetensors import safe_open

    from tokenscope.train.export import export_hugging_face

    path = _llama_file(tmp_path, hf_models, bpe_tokenizer, qtype=Q.Q4_0)
    with pytest.raises(ValueError, match="dtype='float32'"):
        export_hugging_face(load_model(path), tmp_path / "packed")
    folder = export_hugging_face(load_model(path, dtype="float32"), tmp_path / "plain")
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "model.layers.1.self_attn.q_proj.weight" in names and "lm_head.weight" in names


@pytest.mark.parametrize("dtype", ["int4", "bfloat16"])
def test_a_packed_head_leaves_no_copy_of_the_embedding_behind(dtype):
    model = load_model("builtin", dtype=dtype)
    model.predict_next_token_probabilities("The capital of")
    t = model.transformer
    assert t.output_layer is not None and t.head is None and t._head_copy is None
