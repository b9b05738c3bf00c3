"""The output head as the file stores it (Int8Linear, exact two-plane 8-bit groups) and packed
weights kept in a mapped cache file (tokenscope.lm.formats.packed_cache)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize

from tokenscope.lm import load_model
from tokenscope.lm.formats import packed_cache
from tokenscope.lm.formats.dequantize import groups
from tokenscope.lm.packed import Groups, Int4Linear, Int8Linear, SlicedHead

from .conftest import one_layer_llama, write_gguf
from .test_packing import TEXT, _max_prob_diff


def _q8_groups(rows: int, cols: int, seed: int) -> tuple[Groups, torch.Tensor]:
    w = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    raw = quantize(w, Q.Q8_0)
    exact = torch.from_numpy(gguf_dequantize(raw, Q.Q8_0).reshape(rows, cols))
    return groups(raw, Q.Q8_0, (rows, cols)), exact


def test_two_planes_hold_the_8_bit_groups_exactly():
    g, exact = _q8_groups(24, 96, seed=1)
    planes = g.planes()
    assert planes.bits == 4 and planes.shape == (24, 192)
    assert int(planes.q.max()) <= 15 and int(planes.q.min()) >= 0
    high, low = planes.dequantize().split(96, dim=1)
    assert torch.equal(high + low, exact)  # q + 128 = 16 high + low, nothing rounded


@pytest.mark.parametrize("rows", [16, 37])
def test_int8_layer_computes_the_q8_0_matrix(rows):
    g, exact = _q8_groups(rows, 128, seed=rows)
    layer = Int8Linear(g)
    assert (layer.in_features, layer.out_features) == (128, rows)
    x = torch.randn(3, 128)
    y = layer(x)
    expected = x.to(torch.bfloat16).float() @ exact.t()
    size = float(expected.abs().max())
    assert float((y - expected).abs().max()) < 0.01 * size
    # Only the high plane (the low nibbles dropped) is far off: the low plane is used.
    rough = x.to(torch.bfloat16).float() @ (exact - g.planes().dequantize()[:, 128:]).t()
    assert float((rough - expected).abs().max()) > 0.05 * size


def test_zero_points_exact_in_bfloat16_are_folded_into_the_kernel():
    torch.manual_seed(0)
    q = torch.randint(0, 16, (16, 64), dtype=torch.uint8)
    scale = torch.full((16, 2), 0.5)
    folded = Int4Linear(Groups(q, scale, torch.full((16, 2), -3.0), 4))  # zero 1.0: exact
    kept = Int4Linear(Groups(q, scale, torch.full((16, 2), -3.0 + 1e-3), 4))
    assert folded.zeros is None and kept.zeros is not None
    x = torch.randn(2, 64)
    w = (q.float() * 0.5 - 3.0).t()
    assert torch.allclose(folded(x), x.to(torch.bfloat16).float() @ w, atol=1e-2, rtol=1e-2)


@pytest.fixture
def q8_llama(tmp_path, hf_models, bpe_tokenizer):
    """A tied Llama whose matrices are Q4_1 and whose embedding is Q8_0 (SmolLM2's mix)."""
    return write_gguf(
        tmp_path / "tied.gguf",
        hf_models["llama-tied"],
        bpe_tokenizer,
        qtype=Q.Q4_1,
        types={"token_embd.weight": Q.Q8_0},
    )


def test_a_q8_0_embedding_gives_an_exact_int8_head(q8_llama, bpe_tokenizer):
    packed, reference = load_model(q8_llama), load_model(q8_llama, dtype="float32")
    head = packed.transformer.output_layer
    assert isinstance(head, SlicedHead) and isinstance(head.parts[0], Int8Linear)
    assert "int8 head" in packed.packing
    assert _max_prob_diff(packed, reference, bpe_tokenizer) < 0.02


@pytest.fixture(autouse=True)
def cache_on(monkeypatch):
    """The cache is on by default; the test run turns it off (tests/conftest.py) but here."""
    monkeypatch.delenv("TOKENSCOPE_PACKED_CACHE", raising=False)


def _cache_files():
    folder = packed_cache.folder()
    return sorted(folder.glob("*.tspack")) if folder.is_dir() else []


def _logits(model):
    ids = torch.tensor([model.tokenizer.encode(TEXT)])
    with torch.inference_mode():
        return model.transformer(ids)


def test_the_second_load_maps_the_packed_weights_and_predicts_the_same(q8_llama):
    first = load_model(q8_llama)
    assert first.transformer.weight_map is None and len(_cache_files()) == 1
    second = load_model(q8_llama)
    assert second.transformer.weight_map is not None
    assert second.packing == first.packing
    assert torch.equal(_logits(first), _logits(second))
    # The layers' tensors are views of the mapped file, not copies.
    qkv = second.transformer.blocks[0].attn.qkv
    base = torch.frombuffer(second.transformer.weight_map, dtype=torch.uint8)
    start = base.data_ptr()
    assert start <= qkv.packed.data_ptr() < start + base.numel()


def test_a_changed_model_file_is_packed_again(q8_llama):
    load_model(q8_llama)
    stat = os.stat(q8_llama)
    os.utime(q8_llama, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = load_model(q8_llama)
    assert again.transformer.weight_map is None  # the old file's cache does not fit
    assert len(_cache_files()) == 2


@pytest.mark.parametrize("damage", ["truncate", "header", "magic", "key"])
def test_a_damaged_cache_file_is_ignored_and_replaced(q8_llama, damage):
    good = _logits(load_model(q8_llama))
    (path,) = _cache_files()
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "header":
        data[20:40] = b"\xff" * 20
    elif damage == "magic":
        data[:4] = b"GGUF"
    else:  # a well-formed header made for another file
        data = data.replace(b'"mode": "auto"', b'"mode": "int4"', 1)
    path.write_bytes(bytes(data))
    model = load_model(q8_llama)
    assert model.transformer.weight_map is None
    assert torch.equal(_logits(model), good)
    assert load_model(q8_llama).transformer.weight_map is not None  # written afresh


def test_the_cache_can_be_turned_off(q8_llama, monkeypatch):
    monkeypatch.setenv("TOKENSCOPE_PACKED_CACHE", "0")
    load_model(q8_llama)
    assert load_model(q8_llama).transformer.weight_map is None and not _cache_files()


def test_float16_layers_are_kept_and_packed_again(tmp_path, hf_models, bpe_tokenizer):
    """fbgemm's packed matrices cannot be mapped: their float16 weights are cached."""
    path = write_gguf(
        tmp_path / "f16.gguf", hf_models["llama"], bpe_tokenizer, qtype=Q.Q4_0,
        types={"blk.0.ffn_down.weight": Q.F16},
    )  # fmt: skip
    first = load_model(path)
    second = load_model(path)
    assert second.transformer.weight_map is not None
    assert type(second.transformer.blocks[0].mlp.down) is type(first.transformer.blocks[0].mlp.down)
    assert torch.equal(_logits(first), _logits(second))


def test_a_float16_head_splits_its_columns_where_fbgemm_would_pad():
    from tokenscope.lm.packed import ColumnSplit, Fp16Linear, fp16_layer

    torch.manual_seed(2)
    w = torch.randn(40, 576)
    layer = fp16_layer(w)
    assert isinstance(layer, ColumnSplit) and isinstance(layer.first, Fp16Linear)
    assert (layer.split, layer.in_features, layer.out_features) == (512, 576, 40)
    x = torch.randn(3, 576)
    expected = x @ w.t()
    assert torch.allclose(layer(x), expected, atol=0.05, rtol=0.01)
    assert isinstance(fp16_layer(w[:, :512].contiguous()), Fp16Linear)  # fits: one layer


@pytest.fixture(scope="session")
def llama_576(bpe_tokenizer):
    """One layer, 576 wide (SmolLM2's width), tied."""
    return one_layer_llama(bpe_tokenizer, 576, 1536, heads=9, kv_heads=3, seed=3)


def test_a_split_float16_head_is_cached_and_its_source_pages_given_back(
    tmp_path, llama_576, bpe_tokenizer
):
    from tokenscope.lm.packed import ColumnSplit

    path = write_gguf(
        tmp_path / "f16-embed.gguf", llama_576, bpe_tokenizer, qtype=Q.Q4_0,
        types={"token_embd.weight": Q.F16},
    )  # fmt: skip
    first = load_model(path)
    second = load_model(path)
    assert second.transformer.weight_map is not None
    head = second.transformer.output_layer
    assert isinstance(head, SlicedHead) and isinstance(head.parts[0], ColumnSplit)
    assert "fp16 head" in second.packing
    assert torch.equal(_logits(first), _logits(second))
