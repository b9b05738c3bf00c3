"""Our Transformer against Hugging Face transformers on randomly initialised tiny models.

No download: both sides are built here from configs; the weights are mapped with the name
tables in tokenscope.lm.hf_names and the logits must agree to 1e-4 in float32.
"""

import pytest
import torch
import transformers  # a declared test dependency (the "test" extra)

from tokenscope.lm.hf_names import config_from_hf, convert_state_dict
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


def test_cached_decoding_matches_transformers():
    torch.manual_seed(1)
    hf = _hf_llama()
    ours = _ours_from(hf)
    ids = torch.randint(0, 199, (1, 12))
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
