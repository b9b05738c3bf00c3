"""The benchmark's random-weight GGUF writer (benchmarks/random_gguf.py): the files it writes
open in Tokenscope with the shapes asked for, hold the quantization mix asked for, and give
finite activations of ordinary size."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from gguf import GGMLQuantizationType as Q

from tokenscope.lm import load_model
from tokenscope.lm.formats.dequantize import dequantize
from tokenscope.lm.formats.gguf_file import GGUFFile

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def random_gguf():
    spec = importlib.util.spec_from_file_location("random_gguf", BENCHMARKS / "random_gguf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["random_gguf"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer_fields(random_gguf, bpe_tokenizer):
    spec = json.loads(bpe_tokenizer.to_str())
    vocab = bpe_tokenizer.backend.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    return random_gguf.TokenizerFields(
        tokens=tokens,
        types=[3 if bpe_tokenizer.is_special(i) else 1 for i in range(len(tokens))],
        merges=[m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]],
        pre="gpt-2",
        bos=bpe_tokenizer.eos_id,
        eos=bpe_tokenizer.eos_id,
    )


def test_more_bits_in_llama_cpps_layers(random_gguf):
    # llama.cpp: the first and last eighth, and every third layer from the first eighth on.
    more = [i for i in range(16) if random_gguf.use_more_bits(i, 16)]
    assert more == [0, 1, 4, 7, 10, 13, 14, 15]
    types = random_gguf.matrix_types(random_gguf.LLAMA_1B, "q4_k_m", Q.Q6_K)
    six = sorted(name for name, kind in types.items() if kind == Q.Q6_K)
    assert len(six) == 1 + 2 * 8  # the embedding, attn_v and ffn_down in 8 of 16 layers
    assert "blk.4.attn_v.weight" in six and "blk.5.ffn_down.weight" not in six
    assert {types["blk.5.attn_q.weight"], types["blk.4.ffn_up.weight"]} == {Q.Q4_K}
    q4_0 = random_gguf.matrix_types(random_gguf.LLAMA_1B, "q4_0", Q.Q8_0)
    assert set(q4_0.values()) == {Q.Q4_0, Q.Q8_0} and q4_0["token_embd.weight"] == Q.Q8_0


@pytest.mark.parametrize("mix", ["q4_0", "q4_k_m"])
def test_a_tiny_file_loads_with_its_shapes_and_stays_finite(
    tmp_path, random_gguf, tokenizer_fields, mix
):
    # Two layers 256 wide: K-quant blocks span 256 weights; layer 1 is a "more bits" layer.
    shapes = random_gguf.Shapes(
        "tiny", "llama", layers=2, width=256, ffn=512, heads=4, kv_heads=2,
        vocab=len(tokenizer_fields.tokens) + 8, context=256, rope_base=500000.0, rms_eps=1e-5,
    )  # fmt: skip
    path = random_gguf.write(tmp_path / f"tiny-{mix}.gguf", shapes, mix, tokenizer_fields)

    expected = random_gguf.matrix_types(shapes, mix, Q.Q8_0 if mix == "q4_0" else Q.Q6_K)
    with GGUFFile(path) as gf:
        stored = {name: t.qtype for name, t in gf.tensors.items() if len(t.shape) == 2}
        assert stored == expected
        assert "output.weight" not in gf.tensors  # tied, as Llama 3.2 1B
        for name, kind in stored.items():  # every type's weights: step * (q - centre)
            info = gf.tensors[name]
            w = dequantize(gf.tensor_bytes(info), info.qtype, info.shape, name)
            assert 0.008 < float(w.std()) < 0.015, (name, kind, float(w.std()))
            assert abs(float(w.mean())) < 0.15 * float(w.std()), (name, kind, float(w.mean()))
    if mix == "q4_k_m":
        assert stored["blk.1.attn_v.weight"] == Q.Q6_K and stored["blk.0.attn_v.weight"] == Q.Q4_K

    model = load_model(path)
    c = model.config
    assert (c.n_layer, c.d_model, c.d_ff, c.n_head, c.n_kv_head) == (2, 256, 512, 4, 2)
    assert (c.vocab_size, c.context_length, c.rope_base) == (shapes.vocab, 256, 500000.0)
    assert c.tie_embeddings and c.norm == "rmsnorm" and c.mlp == "swiglu"
    reference = load_model(path, dtype="float32")
    ids = torch.tensor([model.encode("The capital of Indonesia is Jakarta.")])
    with torch.inference_mode():
        logits = model.transformer(ids)
        exact = reference.transformer(ids)
    assert bool(torch.isfinite(logits).all())
    assert 0.01 < float(logits.std()) < 10.0  # neither vanished nor exploded
    assert float((logits - exact).abs().max()) < 0.02 * float(exact.abs().max())
