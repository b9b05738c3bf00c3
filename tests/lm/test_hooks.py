"""Named hook points: reading, replacing and lasting changes, without touching forward."""

import pytest
import torch

from tokenscope.lm.hooks import (
    BLOCK_POINTS,
    add_hook,
    hook_points,
    hooks,
    is_hooked,
    run_with_cache,
)

PROMPT = "the cat sat on the mat"


@pytest.fixture(params=["tiny", "tiny-llama"])
def model(request, make_model):
    return make_model(request.param, seed=3)


def _ids(model):
    return torch.tensor([model._context_ids(PROMPT)])


def test_every_block_has_the_five_points_in_forward_order(model):
    names = list(hook_points(model.transformer))
    expected = [f"blocks.{i}.{p}" for i in range(model.config.n_layer) for p in BLOCK_POINTS]
    assert names == expected
    # They are not modules: checkpoints and state dicts do not see them.
    assert not any("hook" in k for k in model.transformer.state_dict())


def test_run_with_cache_records_the_residual_stream_that_the_model_adds_up(model):
    t, ids = model.transformer, _ids(model)
    layers = model.config.n_layer
    names = [f"blocks.{i}.{p}" for i in range(layers) for p in ("resid_pre", "resid_post")]
    with torch.inference_mode():
        logits, cache = run_with_cache(t, ids, [*names, "blocks.0.attn.head_out"])
        plain = t(ids)
        last = t.unembed(cache[f"blocks.{layers - 1}.resid_post"])
    assert torch.equal(logits, plain)  # reading changes nothing
    for i in range(layers - 1):  # one block's output is the next one's input
        assert torch.equal(cache[f"blocks.{i}.resid_post"], cache[f"blocks.{i + 1}.resid_pre"])
    assert torch.allclose(last, plain, atol=1e-5)
    c = model.config
    assert cache["blocks.0.attn.head_out"].shape == (1, c.n_head, ids.shape[1], c.head_dim)
    assert not is_hooked(t)  # the hooks came off


def test_a_hook_that_returns_a_tensor_replaces_the_activation_steering_in_a_few_lines(model):
    t, ids = model.transformer, _ids(model)
    last = model.config.n_layer - 1
    with torch.inference_mode():
        before = t(ids)
        vector = torch.randn(model.config.d_model, generator=torch.Generator().manual_seed(0))
        handle = add_hook(t, f"blocks.{last}.resid_post", lambda x, _name: x + 3 * vector)
        steered = t(ids)
        handle.remove()
        handle.remove()  # twice is harmless
        after = t(ids)
        # Adding the vector by hand after the last block gives the same logits.
        _logits, cache = run_with_cache(t, ids, [f"blocks.{last}.resid_post"])
        by_hand = t.unembed(cache[f"blocks.{last}.resid_post"] + 3 * vector)
    assert not torch.allclose(before, steered, atol=1e-3)
    assert torch.allclose(steered, by_hand, atol=1e-5)
    assert torch.equal(before, after)


def test_patching_an_activation_from_another_prompt_and_wrong_shapes_are_refused(model):
    t = model.transformer
    a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[10, 11, 12, 13, 14]])
    name = "blocks.0.resid_post"
    with torch.inference_mode():
        _la, cache_a = run_with_cache(t, a, [name])
        logits_b_plain = t(b)
        with hooks(t, {name: lambda x, _n: cache_a[name]}):
            patched = t(b)
        assert not torch.allclose(patched, logits_b_plain, atol=1e-4)
        with hooks(t, {name: lambda x, _n: x[:, :1]}), pytest.raises(ValueError, match="shape"):
            t(b)
    assert not is_hooked(t)  # came off although the forward pass failed


def test_an_unknown_point_is_named_in_the_message(model):
    with pytest.raises(ValueError, match=r"blocks\.0 to blocks\.1"):
        add_hook(model.transformer, "blocks.7.resid_pre", lambda x, n: None)


def test_lasting_interventions_are_replaced_by_kind_and_drop_the_prefix_cache(model):
    t = model.transformer
    first = model.predict_next_token_probabilities(PROMPT).vector()
    model.intervene("steering", "v", [("blocks.0.resid_post", lambda x, _n: x * 0.5)])
    assert model.intervention("steering") == "v" and is_hooked(t)
    steered = model.predict_next_token_probabilities(PROMPT).vector()  # not the cached logits
    assert not (steered == first).all()
    model.intervene("steering", "w", [("blocks.0.resid_post", lambda x, _n: x * 0.5)])
    assert len(hook_points(t)["blocks.0.resid_post"]._fns) == 1  # replaced, not added
    model.intervene("steering", None)
    assert model.intervention("steering") is None and not is_hooked(t)
    assert (model.predict_next_token_probabilities(PROMPT).vector() == first).all()


def test_an_intervention_with_a_wrong_name_changes_nothing(model):
    t = model.transformer
    model.intervene("steering", "v", [("blocks.0.resid_post", lambda x, _n: x * 0.5)])
    with pytest.raises(ValueError, match=r"no hook point 'blocks\.99\.resid_post'"):
        model.intervene("steering", "w", [("blocks.1.resid_post", lambda x, _n: x * 0),
                                          ("blocks.99.resid_post", lambda x, _n: x)])  # fmt: skip
    assert model.intervention("steering") == "v"  # the one before stays, whole
    points = hook_points(t)
    assert points["blocks.0.resid_post"].active and not points["blocks.1.resid_post"].active
    model.intervene("steering", None)
    assert not is_hooked(t)
