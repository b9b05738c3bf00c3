"""The compiled decode step (tokenscope.lm.compiled) gives the eager numbers, across cache
buckets, on plain and packed models. Compiling is slow (tens of seconds here), so these are
few and each compiles as little as it can."""

from __future__ import annotations

import pytest
import torch
from gguf import GGMLQuantizationType as Q

from tokenscope.lm import GREEDY, load_model
from tokenscope.lm.compiled import CompiledDecoder
from tokenscope.lm.inside import ablated
from tokenscope.lm.kv_cache import KVCache

from .conftest import write_gguf

pytestmark = pytest.mark.slow


def _greedy(model, prompt, n):
    steps = list(model.generate(prompt, max_tokens=n, sampling=GREEDY))
    return [s.token_id for s in steps], torch.tensor([s.probability for s in steps])


def test_compiled_steps_match_eager_ones_on_the_bundled_model():
    model = load_model("builtin")
    ids, probs = _greedy(model, "The capital of Indonesia is", 12)
    with ablated(model, {(0, 0), (1, 1)}):
        silenced = _greedy(model, "The capital of Indonesia is", 12)[1]
    progress = []
    seconds = model.compile_decoding(lambda stage, done, total: progress.append(stage))
    assert model.compiled and seconds > 0
    assert any("compiling the decode step" in stage for stage in progress)
    ids2, probs2 = _greedy(model, "The capital of Indonesia is", 12)
    assert ids2 == ids
    assert torch.allclose(probs2, probs, atol=1e-4)
    # A hook (here: two heads ablated) sends decoding through the eager path, which knows it.
    with ablated(model, {(0, 0), (1, 1)}):
        assert torch.allclose(_greedy(model, "The capital of Indonesia is", 12)[1], silenced)
    assert not torch.allclose(silenced, probs, atol=1e-3)
    # The next-token chart (a prefill) and scoring still run eagerly and agree.
    dist = model.predict_next_token_probabilities("The capital of France is")
    assert dist.most_likely.text.strip()


def test_a_packed_model_compiles_and_crosses_a_cache_bucket(tmp_path, hf_models, bpe_tokenizer):
    """A Q4_1 file (int4 layers, grouped embedding, fp16 head) through the compiled step; the
    prompt fills most of the first 128-position bucket so generation grows the cache."""
    path = write_gguf(tmp_path / "q.gguf", hf_models["llama-tied"], bpe_tokenizer, qtype=Q.Q4_1)
    model = load_model(path)
    assert model.packing and "int4" in model.packing
    prompt = list(range(3, 3 + 120))  # 120 token ids; the window is 128
    eager_ids, eager_probs = _greedy(model, prompt, 7)
    decoder = CompiledDecoder(model.transformer)
    model._decoder = decoder
    model.forget_cache()
    ids, probs = _greedy(model, prompt, 7)
    assert ids == eager_ids
    assert torch.allclose(probs, eager_probs, atol=1e-3)
    assert decoder.buckets_ready == {128}
    # One token at a time past the end of a 64-position cache: it grows to the next size
    # (the graph's cache length is symbolic); every step still gives the eager logits.
    t = model.transformer
    logits = {}
    for compiled in (False, True):
        model._decoder = decoder if compiled else None
        c = t.config
        cache = KVCache(c.n_layer, c.kv_heads, c.head_dim, 64, max_capacity=c.context_length)
        with torch.inference_mode():
            model.forward(torch.tensor([prompt[:60]]), cache)
            logits[compiled] = torch.cat(
                [model.forward(torch.tensor([[i]]), cache)[0] for i in prompt[60:70]]
            )
        assert cache.length == 70 and cache.capacity == 128
    assert decoder.buckets_ready == {64, 128}
    assert torch.allclose(logits[True], logits[False], atol=1e-3)
