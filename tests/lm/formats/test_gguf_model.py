"""GGUF files of tiny random models load into our Transformer with the same logits.

The files are written here the way llama.cpp's converter writes them (see conftest.py); the
reference is the transformers model they were written from, and for llama also transformers'
own GGUF reader, which checks the Q/K row permutation independently of our writer.
"""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize

from tokenscope.lm import ModelFormatError, load_model

from .conftest import write_gguf

TEXT = "The capital of Indonesia is Jakarta. 语言模型 def add(a, b):"


def _logits(model, hf, tokenizer, text=TEXT):
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        return model.transformer(ids), hf(ids).logits


@pytest.mark.parametrize("name", ["llama", "llama-tied", "qwen2", "gpt2"])
def test_float32_gguf_matches_transformers(tmp_path, hf_models, bpe_tokenizer, name):
    hf = hf_models[name]
    path = write_gguf(tmp_path / f"{name}.gguf", hf, bpe_tokenizer)
    model = load_model(path)
    ours, expected = _logits(model, hf, bpe_tokenizer)
    assert (ours - expected).abs().max().item() < 1e-4
    assert model.architecture == {"llama-tied": "llama"}.get(name, name)
    assert model.quantization == "F32"  # no general.file_type: the matrices' type
    # GPT-2's duplicated head and tied llama files keep one matrix.
    assert model.config.tie_embeddings == (name != "llama")


def test_transformers_reads_our_llama_file_the_same_way(tmp_path, hf_models, bpe_tokenizer):
    """Our test writer permutes Q/K rows as llama.cpp does: transformers undoes it too."""
    import transformers

    path = write_gguf(tmp_path / "llama.gguf", hf_models["llama"], bpe_tokenizer)
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)
    ours = load_model(path)
    a, b = _logits(ours, theirs, bpe_tokenizer)
    assert (a - b).abs().max().item() < 1e-4


def test_skipping_the_row_permutation_would_be_caught(tmp_path, hf_models, bpe_tokenizer):
    """Guard for the guard: a file whose rows were NOT permuted gives different logits."""
    import tokenscope.lm.hf_names as names

    path = write_gguf(tmp_path / "llama.gguf", hf_models["llama"], bpe_tokenizer)
    spec = names.GGUF_ARCHITECTURES["llama"]
    try:
        names.GGUF_ARCHITECTURES["llama"] = {**spec, "rows_permuted": False}
        wrong = load_model(path)
    finally:
        names.GGUF_ARCHITECTURES["llama"] = spec
    ours, expected = _logits(wrong, hf_models["llama"], bpe_tokenizer)
    assert (ours - expected).abs().max().item() > 1e-2


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1])
def test_quantized_gguf_holds_the_dequantized_weights(tmp_path, hf_models, bpe_tokenizer, qtype):
    hf = hf_models["llama"]
    path = write_gguf(tmp_path / "q.gguf", hf, bpe_tokenizer, qtype=qtype)
    model = load_model(path, dtype="float32")
    assert model.quantization == qtype.name
    down = hf.model.layers[1].mlp.down_proj.weight.detach().numpy()
    expected = gguf_dequantize(quantize(down, qtype), qtype).reshape(down.shape)
    got = model.transformer.blocks[1].mlp.down.weight.detach().numpy().T
    np.testing.assert_array_equal(got, expected)
    # Close to the float32 model, as far as the quantization allows.
    ours, reference = _logits(model, hf, bpe_tokenizer)
    tolerance = {Q.F16: 1e-2, Q.BF16: 5e-2, Q.Q8_0: 5e-2}.get(qtype, 0.5)
    assert (ours - reference).abs().max().item() < tolerance


def _random_k_blocks(qtype: Q, rows: int, cols: int, seed: int) -> np.ndarray:
    """Random K-quant blocks with small, finite float16 scales (gguf cannot quantize K types)."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    # Where each type keeps its float16 super-block scales (ggml-common.h).
    scale_at = {Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
    for offset in scale_at[qtype]:
        scale = rng.uniform(0.001, 0.004, size=len(data)).astype(np.float16)
        data[:, offset : offset + 2] = scale.view(np.uint8).reshape(-1, 2)
    return data.reshape(rows, -1)


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K])
def test_k_quant_weights_and_the_q_k_permutation(tmp_path, bpe_tokenizer, wide_llama, qtype):
    """K-quant blocks span 256 weights, so this model is 256 wide."""
    hf = wide_llama
    raw = {
        "blk.0.attn_q.weight": (_random_k_blocks(qtype, 256, 256, 1), qtype),
        "blk.0.ffn_down.weight": (_random_k_blocks(qtype, 256, 512, 2), qtype),
    }
    path = write_gguf(tmp_path / "k.gguf", hf, bpe_tokenizer, raw=raw)
    model = load_model(path, dtype="float32")
    down = gguf_dequantize(raw["blk.0.ffn_down.weight"][0], qtype).reshape(256, 512)
    np.testing.assert_array_equal(
        model.transformer.blocks[0].mlp.down.weight.detach().numpy(), down.T
    )
    # The file's Q rows are in llama.cpp's order; ours must be in Hugging Face's.
    q_file = gguf_dequantize(raw["blk.0.attn_q.weight"][0], qtype).reshape(256, 256)
    q_ours = model.transformer.blocks[0].attn.qkv.weight[:, :256].detach().numpy().T  # (out, in)
    head = 64
    for h, i, j in [(0, 0, 1), (1, 5, 0), (3, 31, 1)]:
        np.testing.assert_array_equal(
            q_ours[h * head + j * head // 2 + i], q_file[h * head + 2 * i + j]
        )
    assert torch.isfinite(model.transformer(torch.tensor([[1, 2, 3]]))).all()


def test_chat_template_bos_eos_and_metadata_are_kept(tmp_path, hf_models, bpe_tokenizer):
    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<bot>"
    path = write_gguf(tmp_path / "c.gguf", hf_models["llama-tied"], bpe_tokenizer,
                      chat_template=template)  # fmt: skip
    model = load_model(path)
    assert model.chat_template == template
    assert model.chat_prompt("hi") == "<user>hi<bot>"
    assert model.tokenizer.eos_id == bpe_tokenizer.eos_id
    assert model.config.context_length == 128 and model.config.rope_base == 50000.0
    assert model.name == "tiny-llama"


def test_tokenizer_from_metadata_matches_the_source(tmp_path, hf_models, bpe_tokenizer):
    path = write_gguf(tmp_path / "t.gguf", hf_models["gpt2"], bpe_tokenizer)
    tok = load_model(path).tokenizer
    for text in [TEXT, "  spaces\n\nand\ttabs", "<|endoftext|>after", "👍🏽 x = 42", ""]:
        assert tok.encode(text) == bpe_tokenizer.encode(text), text
    assert tok.is_special(bpe_tokenizer.eos_id)


def test_unsupported_architecture_is_named(tmp_path, hf_models, bpe_tokenizer):
    path = write_gguf(tmp_path / "a.gguf", hf_models["llama"], bpe_tokenizer)
    data = path.read_bytes().replace(b"llama", b"falco", 1)  # general.architecture's value
    (tmp_path / "b.gguf").write_bytes(data)
    with pytest.raises(
        ModelFormatError, match=r"architecture 'falco' is not supported.*gpt2.*llama.*qwen2"
    ):
        load_model(tmp_path / "b.gguf")


def test_llama3_rope_scaling_from_rope_freqs(tmp_path, bpe_tokenizer):
    """Llama 3.1 files carry their RoPE scaling as per-frequency divisors (rope_freqs)."""
    import math

    import transformers
    from gguf import GGUFValueType

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}  # fmt: skip
    torch.manual_seed(2)
    hf = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=bpe_tokenizer.vocab_size, hidden_size=64, intermediate_size=96,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=128, rope_scaling=scaling,
        )
    ).eval()  # fmt: skip
    # The divisors as llama.cpp's converter computes them.
    divisors = []
    for i in range(0, 16, 2):
        wavelength = 2 * math.pi * 10000.0 ** (i / 16)
        if wavelength < 16 / 4:
            divisors.append(1.0)
        elif wavelength > 16 / 1:
            divisors.append(8.0)
        else:
            smooth = (16 / wavelength - 1) / (4 - 1)
            divisors.append(1 / ((1 - smooth) / 8 + smooth))
    rope_freqs = np.array(divisors, dtype=np.float32)
    path = write_gguf(
        tmp_path / "l3.gguf",
        hf,
        bpe_tokenizer,
        extra={"llama.rope.scaling.original_context_length": (16, GGUFValueType.UINT32)},
        tensors={"rope_freqs.weight": rope_freqs},
    )
    model = load_model(path)
    assert model.config.rope_scaling["factor"] == pytest.approx(8.0)
    text = " ".join(["The capital of Indonesia is Jakarta."] * 6)
    ours, expected = _logits(model, hf, bpe_tokenizer, text)
    assert (ours - expected).abs().max().item() < 1e-4
    # Divisors that no Llama 3 scaling produces are refused rather than approximated.
    path = write_gguf(tmp_path / "odd.gguf", hf, bpe_tokenizer,
                      tensors={"rope_freqs.weight": rope_freqs[::-1].copy()})  # fmt: skip
    with pytest.raises(ModelFormatError, match=r"not Llama 3's scaling"):
        load_model(path)
