"""The Transformer: variants, KV cache, config arithmetic."""

import json

import pytest
import torch

from tokenscope.lm.config import PRESETS, ModelConfig, preset
from tokenscope.lm.kv_cache import KVCache
from tokenscope.lm.model import Transformer

VARIANTS = {
    "gpt2": preset("tiny"),
    "llama-gqa": preset("tiny-llama"),
    "mixed": preset("tiny").replace(
        position="rope", mlp="swiglu", n_kv_head=1, tie_embeddings=False
    ),
    "llama3-scaled-rope": preset("tiny-llama").replace(
        rope_scaling={
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_context_length": 16,
        }
    ),
}


def _model(config: ModelConfig) -> Transformer:
    return Transformer(config).init_weights(seed=0).eval()


@pytest.mark.parametrize("name", VARIANTS)
def test_cached_decoding_matches_full_forward(name):
    model = _model(VARIANTS[name])
    ids = torch.randint(
        0, model.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        full = model(ids)  # (1, 20, V)
        cache = model.new_cache()
        # A 7-token prefill, then chunks of 1 and 4 tokens: exercises the offset causal mask.
        pieces = [model(ids[:, :7], cache)]
        pieces += [model(ids[:, 7:8], cache), model(ids[:, 8:12], cache)]
        pieces += [model(ids[:, i : i + 1], cache) for i in range(12, 20)]
    cached = torch.cat(pieces, dim=1)
    assert cache.length == 20
    assert (cached - full).abs().max().item() < 1e-5


def test_cache_truncate_reuses_prefix():
    model = _model(VARIANTS["llama-gqa"])
    ids = torch.arange(10)[None] % model.config.vocab_size
    other = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        cache = model.new_cache()
        model(ids, cache)
        cache.truncate(6)
        after_truncate = model(other, cache)[0, -1]
        fresh = model(torch.cat([ids[:, :6], other], dim=1))[0, -1]
    assert torch.allclose(after_truncate, fresh, atol=1e-5)


def test_last_only_returns_the_last_position():
    model = _model(VARIANTS["gpt2"])
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(model(ids, last_only=True)[0, 0], model(ids)[0, -1], atol=1e-6)


def test_too_long_input_is_refused_with_a_message():
    model = _model(VARIANTS["gpt2"])
    ids = torch.zeros(1, model.config.context_length + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceed the context length"):
        model(ids)


def test_tied_head_copy_follows_weight_changes():
    model = _model(VARIANTS["gpt2"])
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        before = model(ids)
        model.embed.weight.mul_(2.0)  # in place: the cached transposed head must be rebuilt
        after = model(ids)
        expected = model.final_norm(_hidden(model, ids)) @ model.embed.weight.t()
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, atol=1e-5)


def _hidden(model, ids):
    x = model.embed(ids) + model.pos_embed.weight[: ids.shape[1]]
    for i, block in enumerate(model.blocks):
        x = block(x, i, 0, None)
    return x


def test_gradients_flow_in_training_mode():
    model = Transformer(preset("tiny-llama")).init_weights(seed=0).train()
    ids = torch.randint(0, 256, (2, 16))
    logits = model(ids)
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1)
    )
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_formula_matches_the_module(name):
    config = PRESETS[name]
    with torch.device("meta"):
        model = Transformer(config)
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())


def test_known_shapes_have_known_sizes():
    # GPT-2 small: 124,439,808 parameters (tied head); SmolLM2-135M: 134,515,008.
    assert preset("gpt2-small").parameter_count() == 124_439_808
    assert preset("llama-small").parameter_count() == 134_515_008


def test_flops_and_memory_estimates():
    c = preset("gpt2-small")
    # Forward FLOPs are about 2 per parameter actually used, plus attention.
    non_embedding = c.parameter_count(include_embeddings=False) + c.vocab_size * c.d_model
    assert c.flops_per_token(context=1) == 2 * non_embedding + 4 * c.n_layer * c.d_model
    assert c.flops_per_token() > c.flops_per_token(context=1)
    mem = c.memory_bytes()
    assert mem["weights"] == 4 * c.parameter_count()
    assert mem["kv_cache"] == 2 * 12 * 1024 * 768 * 4
    assert c.memory_bytes(dtype="bfloat16")["weights"] == 2 * c.parameter_count()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    config = PRESETS[name]
    assert ModelConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["vocab_size"] == config.vocab_size


def test_config_refuses_bad_values_and_unknown_keys():
    with pytest.raises(ValueError, match="not divisible"):
        preset("tiny", d_model=33)
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        preset("tiny-llama", n_kv_head=3)
    with pytest.raises(ValueError, match="unknown model config keys: n_embd"):
        ModelConfig.from_dict({**preset("tiny").to_dict(), "n_embd": 3})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


def test_the_cache_grows_as_needed_and_stays_exact():
    model = _model(VARIANTS["llama-gqa"])
    ids = torch.randint(
        0, model.config.vocab_size, (1, 40), generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        full = model(ids)
        # new_cache starts at a power of two of at least 256 positions (or the whole window);
        # a small cache made by hand shows the growth.
        c = model.config
        assert model.new_cache(capacity=3).capacity == min(256, c.context_length)
        cache = KVCache(c.n_layer, c.kv_heads, c.head_dim, 3, max_capacity=c.context_length)
        assert cache.capacity == 3
        parts = [model(ids[:, :5], cache)] + [model(ids[:, i : i + 1], cache) for i in range(5, 40)]
    assert cache.capacity >= 40 and cache.capacity <= model.config.context_length
    assert (torch.cat(parts, dim=1) - full).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="exceed the context length"):
        model(torch.zeros(1, model.config.context_length, dtype=torch.long), cache)
