"""Wrong values through the API get one clear error at the boundary, naming the parameter."""

from __future__ import annotations

import math

import pytest
import torch

from tokenscope.lm import SamplingSettings
from tokenscope.lm.arguments import InvalidArgumentError
from tokenscope.lm.errors import ModelFormatError, TokenscopeError
from tokenscope.lm.sampling import sampling_distribution


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"temperature": "hot"}, ["temperature", "number", "str"]),
        ({"temperature": math.nan}, ["temperature", "[0, 100]"]),
        ({"temperature": math.inf}, ["temperature"]),
        ({"temperature": 1e9}, ["temperature", "[0, 100]"]),
        ({"top_k": 2.5}, ["top_k", "whole number"]),
        ({"top_k": True}, ["top_k", "bool"]),
        ({"top_k": "40"}, ["top_k", "str"]),
        ({"top_p": None}, ["top_p", "NoneType"]),
        ({"top_p": 0}, ["top_p", "(0, 1]"]),
        ({"min_p": -0.1}, ["min_p", "[0, 1]"]),
        ({"repetition_penalty": 0.0}, ["repetition_penalty", "(0, 100]"]),
        ({"seed": -1}, ["seed", ">= 0" if False else "[0,"]),
        ({"seed": 1.5}, ["seed", "whole number"]),
    ],
)
def test_bad_sampling_settings_name_the_knob_and_its_range(kwargs, words):
    with pytest.raises(InvalidArgumentError) as caught:
        SamplingSettings(**kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert isinstance(caught.value, (ValueError, TokenscopeError))


def test_numpy_and_torch_scalars_are_accepted_and_become_plain_numbers():
    import numpy as np

    s = SamplingSettings(
        temperature=np.float32(0.5), top_k=np.int64(3), seed=torch.tensor(7).item()
    )
    assert type(s.temperature) is float and s.temperature == 0.5
    assert type(s.top_k) is int and s.top_k == 3


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.predict_next_token_probabilities(42), ["context", "int"]),
        (lambda m: m.predict_next_token_probabilities(None), ["context", "NoneType"]),
        (lambda m: m.predict_next_token_probabilities([1, 10**9]), ["context[1]", "10"]),
        (lambda m: m.predict_next_token_probabilities([1, -3]), ["context[1]", "-3"]),
        (lambda m: m.predict_next_token_probabilities(["a"]), ["context[0]", "str"]),
        (lambda m: m.predict_next_token_probabilities("x", top_k=-1), ["top_k"]),
        (lambda m: m.predict_next_token_probabilities("x", sampling={"top_k": 3}), ["sampling"]),
        (lambda m: m.generate("x", max_tokens="5"), ["max_tokens", "str"]),
        (lambda m: m.generate("x", max_tokens=-1), ["max_tokens", "[0,"]),
        (lambda m: m.generate("x", max_tokens=10**12), ["max_tokens"]),
        (lambda m: m.generate("x", stop="\n"), ["stop", "list of strings"]),
        (lambda m: m.generate("x", stop=[None]), ["stop", "NoneType"]),
        (lambda m: m.generate(b"bytes"), ["prompt", "bytes"]),
        (lambda m: m.score(3.0), ["text", "float"]),
        (lambda m: m.score_continuation("a", 7), ["continuation", "int"]),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(tiny_model, call, words):
    with pytest.raises(InvalidArgumentError) as caught:
        call(tiny_model)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_good_token_ids_still_work(tiny_model):
    ids = tiny_model.encode("The capital of")
    d = tiny_model.predict_next_token_probabilities(ids)
    assert abs(float(d.raw.sum()) - 1.0) < 1e-4
    assert d.context_ids[-len(ids) :] == tuple(ids)


def test_non_finite_logits_are_a_damaged_model_not_a_sampler_crash():
    logits = torch.tensor([0.1, float("nan"), 0.3])
    with pytest.raises(ModelFormatError, match="NaN or infinite"):
        sampling_distribution(logits, SamplingSettings(temperature=0.7, top_k=2))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.predict_next_token_probabilities("a\ud800b"), ["context", "character 2"]),
        (lambda m: m.generate("caf\udce9"), ["prompt", "byte 0xE9", "not UTF-8"]),
        (lambda m: m.score("\udfff"), ["text", "\\udfff", "half of a surrogate pair"]),
        (lambda m: m.score_continuation("a", " \udcff"), ["continuation", "character 2"]),
        (lambda m: m.encode("x\ud800"), ["text", "\\ud800"]),
        (lambda m: m.tokenize("x\ud800"), ["text", "\\ud800"]),
        (lambda m: m.generate("x", stop=["\ud800"]), ["stop", "\\ud800"]),
    ],
)
def test_text_with_a_lone_surrogate_is_refused_saying_where(tiny_model, call, words):
    # (the tokenizer itself would fail with "TypeError: TextInputSequence must be str")
    with pytest.raises(InvalidArgumentError) as caught:
        call(tiny_model)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert message.isprintable()  # (the surrogate is named, not put in the message)


def test_a_surrogate_pair_is_text():
    from tokenscope.lm.arguments import lone_surrogate, unicode_text

    emoji = "\U0001f44d"  # one character in a str; two halves only in JSON's "\ud83d\udc4d"
    assert unicode_text("prompt", f"ok {emoji}") == f"ok {emoji}"
    assert lone_surrogate("ok") is None
    assert lone_surrogate("ab\ud83d") == (
        "character 3 is \\ud83d, half of a surrogate pair without the other half"
    )


def test_a_few_shot_prompt_with_a_lone_surrogate_names_the_part():
    from tokenscope.lm.fewshot.prompt import Example, FewShotPrompt

    with pytest.raises(InvalidArgumentError, match="example 2's output is not valid text"):
        FewShotPrompt(examples=[Example("a", "b"), Example("c", "d\ud800")], query="e")
    with pytest.raises(InvalidArgumentError, match="query is not valid text"):
        FewShotPrompt(query="\udcff")
