"""Our Transformer against Hugging Face transformers on randomly initialised tiny models.

No download: both sides are built here from configs; the weights are mapped with the name
tables in tokenscope.lm.hf_names and the logits must agree to 1e-4 in float32.
"""

import pytest
import torch
import transformers  # a declared test dependency (the "test" extra)

from tokenscope.lm.hf_config import config_from_hf
from tokenscope.lm.hf_names import convert_state_dict
from tokenscope.lm.model import Transformer


def _ours_from(hf_model) -> Transformer:
    hf_config = hf_model.config.to_dict()
    config = config_from_hf(hf_config)
    with torch.device("meta"):
        ours = Transformer(config)
    targets = set(ours.state_dict())
    state = convert_state_dict(hf_model.state_dict(), hf_config["model_type"], config, targets)
    ours.load_state_dict(state, assign=True, strict=True)
    return ours.eval()


def _hf_gpt2(**kw):
    cfg = transformers.GPT2Config(
        vocab_size=211, n_positions=64, n_embd=48, n_layer=3, n_head=4, **kw
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def _hf_llama(**kw):
    base = dict(
        vocab_size=199,
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
    )
    base.update(kw)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**base)).eval()


def _hf_qwen2():
    cfg = transformers.Qwen2Config(
        vocab_size=151,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return transformers.Qwen2ForCausalLM(cfg).eval()


def _hf_neox(**kw):
    base = dict(
        vocab_size=173,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=64,
        rotary_pct=0.25,
    )
    base.update(kw)
    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**base)).eval()


def _hf_qwen3(**kw):
    base = dict(
        vocab_size=151,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,  # wider heads than hidden_size / heads, as Qwen3 has
        max_position_embeddings=64,
    )
    base.update(kw)
    return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**base)).eval()


def _hf_olmo2():
    cfg = transformers.Olmo2Config(
        vocab_size=167,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.Olmo2ForCausalLM(cfg).eval()


def _hf_gemma3(**kw):
    base = dict(
        vocab_size=181,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=24,
        max_position_embeddings=64,
        sliding_window=5,  # far shorter than the test's 40 tokens, so the window is tested
        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                     "sliding_attention"],
        attn_implementation="eager",
    )  # fmt: skip
    base.update(kw)
    return transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**base)).eval()


def _hf_gemma2():
    cfg = transformers.Gemma2Config(
        vocab_size=181,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        max_position_embeddings=64,
        sliding_window=6,
        attn_logit_softcapping=7.0,
        final_logit_softcapping=3.0,
        attn_implementation="eager",
    )
    return transformers.Gemma2ForCausalLM(cfg).eval()


CASES = {
    "gpt2": lambda: _hf_gpt2(),
    "gpt2-untied-exact-gelu": lambda: _hf_gpt2(
        tie_word_embeddings=False, activation_function="gelu"
    ),
    "llama-gqa-untied": lambda: _hf_llama(rope_theta=100000.0),
    "llama-tied": lambda: _hf_llama(tie_word_embeddings=True, num_key_value_heads=8),
    "llama3-rope-scaling": lambda: _hf_llama(
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    ),
    "qwen2-qkv-bias": _hf_qwen2,
    "gpt-neox-parallel-partial-rotary": lambda: _hf_neox(),
    "gpt-neox-sequential": lambda: _hf_neox(use_parallel_residual=False, rotary_pct=0.5),
    "qwen3-qk-norm": lambda: _hf_qwen3(),
    "qwen3-tied": lambda: _hf_qwen3(tie_word_embeddings=True, head_dim=16),
    "olmo2-post-norm": _hf_olmo2,
    "gemma3-sliding": lambda: _hf_gemma3(),
    "gemma3-untied-final-softcap": lambda: _hf_gemma3(
        final_logit_softcapping=3.0, tie_word_embeddings=False
    ),
    "gemma2-softcaps": _hf_gemma2,
}


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(case):
    torch.manual_seed(0)
    hf = CASES[case]()
    # Random init leaves biases at zero; give every parameter a value so each one is tested.
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ours = _ours_from(hf)
    ids = torch.randint(0, hf.config.vocab_size, (2, 40))
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "case", ["llama-gqa-untied", "gemma3-sliding", "gpt-neox-parallel-partial-rotary"]
)
def test_cached_decoding_matches_transformers(case):
    torch.manual_seed(1)
    hf = CASES[case]()
    with torch.no_grad():  # away from near-uniform attention, so that the cache matters
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ours = _ours_from(hf)
    ids = torch.randint(0, hf.config.vocab_size, (1, 12))
    with torch.no_grad():
        expected = hf(ids).logits[0, -1]
        cache = ours.new_cache()
        ours(ids[:, :-1], cache)
        got = ours(ids[:, -1:], cache)[0, -1]
    assert (got - expected).abs().max().item() < 1e-4


def test_unsupported_architecture_is_named():
    from tokenscope.lm.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match=r"'falcon' is not supported.*gpt2.*llama"):
        config_from_hf({"model_type": "falcon"})


BASE = {"vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 32, "max_position_embeddings": 16}  # fmt: skip


def test_config_readers_take_the_references_defaults():
    neox = config_from_hf({"model_type": "gpt_neox", "vocab_size": 10, "hidden_size": 64,
                           "num_hidden_layers": 1, "num_attention_heads": 4,
                           "intermediate_size": 32, "max_position_embeddings": 16})  # fmt: skip
    assert neox.rotary_fraction == 0.25 and neox.parallel_residual and not neox.tie_embeddings
    base = BASE
    assert config_from_hf({**base, "model_type": "qwen3"}).head_dim == 128
    gemma = config_from_hf({**base, "model_type": "gemma3_text", "head_dim": 16})
    assert gemma.attn_scale == 256**-0.5 and gemma.sliding_window == 4096
    assert gemma.layer_types == ("sliding", "sliding")  # every sixth layer is global
    assert gemma.rope_base == 1e6 and gemma.rope_local_base == 1e4
    old = config_from_hf({**base, "model_type": "gemma3_text", "rope_theta": 5e5,
                          "rope_local_base_freq": 2e4, "sliding_window_pattern": 2})  # fmt: skip
    assert (old.rope_base, old.rope_local_base, old.layer_types) == (5e5, 2e4, ("sliding", "full"))
    # What the JSON of a native checkpoint keeps comes back the same.
    from tokenscope.lm.config import ModelConfig

    assert ModelConfig.from_json(gemma.to_json()) == gemma


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"model_type": "gemma3_text", "use_bidirectional_attention": True}, "bidirectional"),
        ({"model_type": "gemma3_text", "query_pre_attn_scalar": 0}, "is not positive"),
        ({"model_type": "gemma3_text", "layer_types": ["local"] * 2}, "'full_attention' and"),
        ({"model_type": "gemma3_text", "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
         "RoPE scaling"),
        ({"model_type": "qwen3", "use_sliding_window": True}, "sliding-window"),
        ({"model_type": "qwen3", "attention_bias": True}, "attention biases"),
        ({"model_type": "gpt_neox", "attention_bias": False}, "without attention biases"),
        ({"model_type": "gemma3"}, "only the text model"),
    ],
)  # fmt: skip
def test_variants_outside_the_tables_are_refused(extra, message):
    from tokenscope.lm.errors import ModelFormatError

    base = BASE
    with pytest.raises(ModelFormatError, match=message):
        config_from_hf({**base, **extra})
