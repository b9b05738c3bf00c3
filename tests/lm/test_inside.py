"""Looking inside the forward pass (tokenscope.lm.inside): the logit lens, attention weights,
induction scores, head ablation and surprisal, each checked against a computation by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokenscope.lm import LanguageModel, Transformer
from tokenscope.lm.config import ModelConfig
from tokenscope.lm.inside import (
    ablated,
    ablation,
    attention,
    compare,
    induction_scores,
    logit_lens,
    set_ablation,
    surprisal,
)

PROMPT = "The capital of Indonesia is"


@pytest.fixture(params=["tiny", "tiny-llama"])
def model(request, make_model):
    return make_model(request.param, seed=3)


def test_the_last_layer_of_the_lens_is_the_models_own_prediction(model):
    lens = logit_lens(model, PROMPT, top_k=10)
    assert len(lens.rows) == model.config.n_layer + 1
    dist = model.predict_next_token_probabilities(PROMPT)
    last = lens.rows[-1]
    assert [i for i, _label, _p in last.top] == [t.token_id for t in dist.top(10)]
    assert [p for _i, _label, p in last.top] == pytest.approx(
        [t.probability for t in dist.top(10)], rel=1e-5
    )
    assert last.target_rank == 1 and lens.target == dist.top(1)[0].token_id
    assert lens.first_top_layer is not None and lens.first_top_layer <= model.config.n_layer
    # Layer 0 reads the embeddings through the same final norm and head, by hand.
    t = model.transformer
    ids = torch.tensor([list(lens.token_ids)])
    with torch.inference_mode():
        x = t.embed(ids) * t.config.embed_multiplier
        if t.pos_embed is not None:
            x = x + t.pos_embed.weight[: ids.shape[1]]
        by_hand = torch.softmax((t.final_norm(x[0, -1]) @ t._output_matrix()).float(), -1)
    assert lens.rows[0].top[0][2] == pytest.approx(float(by_hand.max()), rel=1e-5)


def test_attention_weights_are_softmax_of_scaled_scores_and_reproduce_the_fused_output(model):
    maps = attention(model, PROMPT)
    c = model.config
    n = len(maps.token_ids)
    assert maps.weights.shape == (c.n_layer, c.n_head, n, n)
    assert np.allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(maps.weights, k=1), 0.0)
    # Layer 0 by hand: softmax(q k^T / sqrt(d) + causal mask), from the block's own projections.
    t = model.transformer
    block = t.blocks[0]
    ids = torch.tensor([list(maps.token_ids)])
    with torch.inference_mode():
        x = t.embed(ids)
        if t.pos_embed is not None:
            x = x + t.pos_embed.weight[:n]
        qk, _v = block.attn._queries_keys(block.attn_norm(x))
        if block.attn.rotary is not None:
            qk = block.attn.rotary.apply(qk, 0)
        q, k = qk.split([c.n_head, c.kv_heads], dim=1)
        k = k.repeat_interleave(c.n_head // c.kv_heads, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(c.head_dim)
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
        by_hand = torch.softmax(scores, dim=-1)[0].numpy()
    assert np.allclose(maps.weights[0], by_hand, atol=1e-6)
    # The explicit path (taken while a hook reads the pattern) gives the fused path's logits.
    from tokenscope.lm.hooks import hooks

    readers = {f"blocks.{i}.attn.pattern": lambda x, name: None for i in range(c.n_layer)}
    with torch.inference_mode():
        fused = t(ids)
        with hooks(t, readers):
            explicit = t(ids)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_ablating_every_head_of_a_layer_removes_its_attention_output(make_model):
    model = make_model("tiny-llama", seed=5)  # no output bias: the attention adds nothing
    layer = 1
    before = model.predict_next_token_probabilities(PROMPT).vector()
    with ablated(model, {(layer, h) for h in range(model.config.n_head)}):
        assert len(ablation(model)) == model.config.n_head
        silenced = np.asarray(model.predict_next_token_probabilities(PROMPT).vector())
        block = model.transformer.blocks[layer]
        original = block.attn.forward
        block.attn.forward = lambda x, *_args: torch.zeros_like(x)
        try:
            set_ablation(model, ())  # (the removal alone, for the reference)
            removed = np.asarray(model.predict_next_token_probabilities(PROMPT).vector())
        finally:
            block.attn.forward = original
            set_ablation(model, {(layer, h) for h in range(model.config.n_head)})
    assert np.allclose(silenced, removed, atol=1e-6)
    assert not np.allclose(silenced, before, atol=1e-4)  # it changed the prediction
    assert ablation(model) == frozenset()
    assert np.allclose(model.predict_next_token_probabilities(PROMPT).vector(), before)
    with pytest.raises(ValueError, match="no head 9 in layer 0"):
        set_ablation(model, {(0, 9)})


def _copier(tokenizer) -> LanguageModel:
    """A two-layer, one-head-per-layer model built by hand to copy: layer 0's head looks at
    the previous position and writes that token into its own subspace; layer 1's head looks
    for the position whose previous token is the current one (an induction head)."""
    v, p = tokenizer.vocab_size, 64
    d = 2 * v + p
    config = ModelConfig(vocab_size=v, context_length=p, n_layer=2, n_head=1, d_model=d,
                         d_ff=4, name="copier")  # fmt: skip
    t = Transformer(config)
    with torch.no_grad():
        for name, param in t.named_parameters():
            param.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
        t.embed.weight[torch.arange(v), torch.arange(v)] = 1.0  # tokens: dims 0..v-1
        t.pos_embed.weight[torch.arange(p), 2 * v + torch.arange(p)] = 1.0  # positions
        a, copy = 3.0, 1 / 18.0
        w0 = t.blocks[0].attn.qkv.weight  # (d, 3d): queries, keys, values
        i = torch.arange(p - 1)
        w0[2 * v + i + 1, i + 1] = a  # the query of position i + 1 ...
        w0[2 * v + i, d + i + 1] = a  # ... meets the key of position i
        w0[torch.arange(v), 2 * d + torch.arange(v)] = 1.0  # its value: the token
        t.blocks[0].attn.out.weight[torch.arange(v), v + torch.arange(v)] = copy  # -> prev dims
        w1 = t.blocks[1].attn.qkv.weight
        w1[torch.arange(v), torch.arange(v)] = a  # query: the current token
        w1[v + torch.arange(v), d + torch.arange(v)] = a  # key: the previous token
    return LanguageModel(t, tokenizer, name="copier")


def test_induction_scores_find_a_copying_head_and_not_a_random_one(make_model, bpe_tokenizer):
    copier = _copier(bpe_tokenizer)
    scores = induction_scores(copier, seed=1)
    assert scores.shape == (2, 1)
    assert scores[1, 0] > 0.8, scores  # the induction head
    assert scores[0, 0] < 0.1, scores  # the previous-token head is not one
    random = induction_scores(make_model("tiny", seed=2), seed=1)
    assert random.max() < 0.2, random
    # The copier does copy: after "A B ... A" it predicts B far above a random model.
    with ablated(copier, {(1, 0)}):
        silenced = induction_scores(copier, seed=1)
    assert silenced[1, 0] == pytest.approx(scores[1, 0])  # weights still computed, output cut


def test_surprisal_is_minus_log2_p_and_windows_match_a_single_pass(make_model):
    model = make_model("tiny", seed=4)
    text = "The capital of Indonesia is Jakarta. " * 12  # longer than the 64-token context
    s = surprisal(model, text, top_k=3)
    score = model.score(text)
    assert s.windows > 1
    assert [t.token_id for t in s.tokens] == [t.token_id for t in score.tokens]
    for mine, ref in zip(s.tokens, score.tokens, strict=True):
        if ref.logprob is None:
            assert mine.logprob is None
        else:
            assert mine.bits == pytest.approx(ref.bits, abs=1e-5)
    # Every token by hand: one forward pass of the window that scores it (windows start every
    # 32 tokens; each scores the positions past the first half, the first from position 1).
    ids = [t.token_id for t in s.tokens]
    start = model.tokenizer.bos_id if model.tokenizer.bos_id is not None else model.tokenizer.eos_id
    full = ([start] if start is not None else []) + ids
    lead = len(full) - len(ids)
    passes = {}
    with torch.inference_mode():
        for k in range(1, len(full)):
            begin = 0 if k < 64 else (k // 32 - 1) * 32
            if begin not in passes:
                chunk = torch.tensor([full[begin : begin + 64]])
                passes[begin] = torch.log_softmax(model.transformer(chunk)[0], -1)
            logp = passes[begin][k - begin - 1]
            expected = -float(logp[full[k]]) / math.log(2)
            assert s.tokens[k - lead].bits == pytest.approx(expected, abs=1e-5)
            assert s.tokens[k - lead].rank == int((logp > logp[full[k]]).sum()) + 1
    assert len(passes) == s.windows
    nbytes = sum(t.byte_end - t.byte_start for t in s.scored)
    assert s.bits_per_byte == pytest.approx(s.total_bits / nbytes)
    assert s.perplexity == pytest.approx(2 ** (s.total_bits / len(s.scored)))
    seen = []
    surprisal(model, text, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (s.windows, s.windows)


def test_two_models_are_compared_per_token_by_bytes(make_model):
    a, b = make_model("tiny", seed=1), make_model("tiny", seed=2)
    text = "The capital of Indonesia is Jakarta."
    sa, sb = surprisal(a, text), surprisal(b, text)
    same = compare(sa, sa)
    assert all(x == pytest.approx(y) for _s, _e, x, y in same.spans)
    diff = compare(sa, sb)  # one tokenizer: each A token is one B token
    by_token = {t.start: (t.bits, u.bits) for t, u in zip(sa.tokens, sb.tokens, strict=True)}
    for start, _end, x, y in diff.spans:
        assert (x, y) == pytest.approx(by_token[start])
    top = diff.largest(3)
    assert abs(top[0][2] - top[0][3]) >= abs(top[-1][2] - top[-1][3])


def test_models_with_different_tokenizers_are_aligned_by_bytes(make_model):
    import tokenscope

    a = make_model("tiny", seed=1)  # a 320-piece BPE trained here
    b = tokenscope.load_model("builtin")  # the bundled model's own tokenizer
    text = "The capital of Indonesia is Jakarta. Kucing means cat."
    sa, sb = surprisal(a, text), surprisal(b, text)
    assert [t.byte_end for t in sa.tokens] != [t.byte_end for t in sb.tokens]  # they differ
    diff = compare(sa, sb)
    # Every byte B scored is shared out once: over A's spans, B's bits add up to B's own
    # total over the same bytes.
    covered = set()
    for start, end, _x, _y in diff.spans:
        covered.update(range(len(text[:start].encode()), len(text[:end].encode())))
    expected = 0.0
    for t in sb.tokens:
        if t.bits is not None and t.byte_end > t.byte_start:
            share = len(covered & set(range(t.byte_start, t.byte_end)))
            expected += t.bits * share / (t.byte_end - t.byte_start)
    assert sum(y for *_s, y in diff.spans) == pytest.approx(expected, rel=1e-6)
    assert sum(x for _s, _e, x, _y in diff.spans) == pytest.approx(
        sum(t.bits for t in sa.tokens if t.bits is not None and t.byte_end > t.byte_start
            and all(c in covered for c in range(t.byte_start, t.byte_end))),
        rel=1e-6,
    )  # fmt: skip
