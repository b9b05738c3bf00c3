"""Attention-only models (mlp "none"): the classic setting for induction heads. They train,
save, load, generate with the KV cache and open in the lens like any other; export says why not."""

from __future__ import annotations

import pytest
import torch

import tokenscope
from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.inside import logit_lens
from tokenscope.lm.sampling import SamplingSettings


def test_an_attention_only_model_round_trips_and_generates(make_model, tmp_path):
    model = make_model("tiny", seed=3, mlp="none")
    blocks = model.transformer.blocks
    assert all(b.mlp is None and b.mlp_norm is None for b in blocks)
    actual = sum(p.numel() for p in model.transformer.parameters())
    assert model.config.parameter_count() == actual
    assert model.config.ffn_dim == 0
    with_mlp = make_model("tiny", seed=3)
    assert with_mlp.config.parameter_count() > actual
    folder = model.save(tmp_path / "attn-only")
    again = tokenscope.load_model(str(folder))
    ids = torch.tensor([[5, 9, 11, 40, 7]])
    with torch.no_grad():
        assert torch.allclose(model.transformer(ids), again.transformer(ids), atol=1e-6)
    # Generation with the KV cache gives what full forward passes give (greedy).
    steps = list(again.generate("The capital", max_tokens=6,
                                sampling=SamplingSettings(temperature=0.0)))  # fmt: skip
    ids = list(again._context_ids("The capital"))
    for _ in range(6):
        with torch.no_grad():
            ids.append(int(again.transformer(torch.tensor([ids]))[0, -1].argmax()))
    assert [s.token_id for s in steps] == ids[-6:]
    lens = logit_lens(again, "The capital of")
    assert len(lens.rows) == again.config.n_layer + 1


def test_an_attention_only_model_is_not_exported_and_says_why(make_model, tmp_path):
    from tokenscope.train.export import export_hugging_face

    with pytest.raises(TokenscopeError, match="attention-only model"):
        export_hugging_face(make_model("tiny", mlp="none"), tmp_path / "hf")
