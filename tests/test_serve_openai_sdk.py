"""`tokenscope serve` read by the official OpenAI Python SDK: every response shape it reads
(completions from every prompt shape, stop, n, usage, streaming with usage, chat, errors), with
the engine's own greedy text and log-probabilities behind them."""

from __future__ import annotations

import math

import openai
import pytest

from tokenscope.lm import GREEDY, LanguageModel

from .serve_run import running

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def model(make_model):
    base = make_model("tiny", seed=11)
    return LanguageModel(base.transformer, base.tokenizer, name="tiny-chat", chat_template=CHATML)


@pytest.fixture(scope="module")
def client(model):
    from tokenscope.serve import create_app

    with running(create_app(model, name="tiny-chat", max_logprobs=5)) as root:
        yield openai.OpenAI(base_url=f"{root}/v1", api_key="none", max_retries=0)


def greedy_text(model, prompt, n=12) -> tuple[str, str]:
    """(the text the engine generates greedily, why it stopped), special tokens left out."""
    text, reason, _tokens = greedy(model, prompt, n)
    return text, reason


def greedy(model, prompt, n=12) -> tuple[str, str, int]:
    """greedy_text, and how many tokens it took."""
    gen = model.generate(prompt, max_tokens=n, sampling=GREEDY)
    steps = list(gen)
    tok = model.tokenizer
    text = "".join("" if tok.is_special(s.token_id) else s.text for s in steps) + gen.flushed
    return text, gen.stop_reason, len(steps)


def test_completions_take_every_prompt_shape_and_answer_one_choice_each(client, model):
    text, _, made = greedy(model, PROMPT)
    ids = model.encode(PROMPT)
    other = "Once upon a time"
    other_text, _, other_made = greedy(model, other)
    for prompt, expected, tokens in [
        (PROMPT, [text], made),
        ([PROMPT, other], [text, other_text], made + other_made),
        (ids, [text], made),
        ([ids, model.encode(other)], [text, other_text], made + other_made),
    ]:
        r = client.completions.create(model="tiny-chat", prompt=prompt, max_tokens=12,
                                      temperature=0)  # fmt: skip
        assert [c.index for c in r.choices] == list(range(len(expected)))
        assert [c.text for c in r.choices] == expected
        assert r.id and r.created > 0 and r.object == "text_completion"
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.usage.completion_tokens == tokens


def test_stop_cuts_the_text_before_the_stop_sequence(client, model):
    text, _ = greedy_text(model, PROMPT, 24)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop and stop in text
    r = client.completions.create(model="tiny-chat", prompt=PROMPT, max_tokens=24,
                                  temperature=0, stop=stop)  # fmt: skip
    assert r.choices[0].text == text[: text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    four = [stop, "zzz", "qq", text[:1] * 40]
    r = client.completions.create(model="tiny-chat", prompt=PROMPT, max_tokens=24,
                                  temperature=0, stop=four)  # fmt: skip
    assert r.choices[0].text == text[: text.index(stop)]
    with pytest.raises(openai.BadRequestError, match="stop"):
        client.completions.create(model="tiny-chat", prompt=PROMPT, stop=["a", "b", "c", "d", "e"])


def test_offsets_count_every_tokens_text_and_the_stop_that_ended_it_is_named(client, model):
    text, _ = greedy_text(model, PROMPT, 24)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    # A stop sequence that begins mid-way but never comes holds text back for a while.
    for stops in ([stop], [text[3] + "\x01never"]):
        kwargs = {"model": "tiny-chat", "prompt": PROMPT, "max_tokens": 24, "temperature": 0,
                  "stop": stops, "logprobs": 1}  # fmt: skip
        choice = client.completions.create(**kwargs).choices[0]
        lp = choice.logprobs
        for i in range(len(lp.tokens) - 1):  # (the last may be the end-of-text token)
            assert lp.text_offset[i + 1] - lp.text_offset[i] == len(lp.tokens[i])
        ended = stop in text and stops == [stop]
        if ended:
            assert choice.finish_reason == "stop"
        assert choice.stop_reason == (stop if ended else None)
        last = list(client.completions.create(**kwargs, stream=True))[-1].choices[0]
        assert last.finish_reason == choice.finish_reason
        assert last.stop_reason == choice.stop_reason


def test_n_choices_with_a_seed_are_drawn_again_alike_and_usage_counts_them(client, model):
    kwargs = {"model": "tiny-chat", "prompt": [PROMPT, "Once"], "max_tokens": 6, "n": 2,
              "temperature": 1.0, "seed": 7}  # fmt: skip
    first, again = client.completions.create(**kwargs), client.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2, 3]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert first.usage.prompt_tokens == len(model.encode(PROMPT)) + len(model.encode("Once"))
    assert first.usage.completion_tokens <= 4 * 6
    with pytest.raises(openai.BadRequestError, match="n should be less than or equal to 16"):
        client.completions.create(model="tiny-chat", prompt=PROMPT, n=17)


def test_a_stream_with_usage_equals_the_whole_answer(client, model):
    kwargs = {"model": "tiny-chat", "prompt": [PROMPT, "Once"], "max_tokens": 10,
              "temperature": 0, "logprobs": 3, "echo": True}  # fmt: skip
    whole = client.completions.create(**kwargs)
    chunks = list(client.completions.create(**kwargs, stream=True,
                                            stream_options={"include_usage": True}))  # fmt: skip
    assert all(c.id == chunks[0].id and c.created for c in chunks)
    texts: dict[int, str] = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {c.index: c.text for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    echoed = whole.choices[0].logprobs
    assert echoed.tokens[0] and echoed.token_logprobs[0] is None  # the first token: no context
    assert all(math.isfinite(lp) and lp <= 0 for lp in echoed.token_logprobs[1:])


def test_logprobs_out_of_range_and_an_unknown_model_are_refused(client):
    with pytest.raises(openai.BadRequestError, match="logprobs should be greater than or equal"):
        client.completions.create(model="tiny-chat", prompt=PROMPT, logprobs=-1)
    with pytest.raises(openai.BadRequestError, match="greater than max allowed: 5"):
        client.completions.create(model="tiny-chat", prompt=PROMPT, logprobs=6)
    with pytest.raises(openai.NotFoundError, match="no model 'gpt-4'"):
        client.completions.create(model="gpt-4", prompt=PROMPT)


def test_chat_completions_through_the_models_template(client, model):
    messages = [{"role": "user", "content": "Hi."}]  # (the test model's context: 64 tokens)
    prompt = model.chat_prompt("Hi.")
    text, reason = greedy_text(model, prompt, 6)
    r = client.chat.completions.create(
        model="tiny-chat", messages=messages, max_tokens=6, temperature=0, logprobs=True,
        top_logprobs=3, n=2,
    )  # fmt: skip
    assert r.object == "chat.completion" and [c.index for c in r.choices] == [0, 1]
    for choice in r.choices:
        assert choice.message.role == "assistant" and choice.message.content == text
        assert choice.finish_reason == ("stop" if reason == "eos" else "length")
        content = choice.logprobs.content
        assert len(content) == r.usage.completion_tokens // 2
        assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
        assert content[0].top_logprobs[0].logprob >= content[0].logprob
    assert r.usage.prompt_tokens == len(model._context_ids(prompt))
    stream = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=6,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text and chunks[-1].usage.completion_tokens == r.usage.completion_tokens // 2
    with pytest.raises(openai.BadRequestError, match="greater than max allowed: 5"):
        client.chat.completions.create(model="tiny-chat", messages=messages, logprobs=True,
                                       top_logprobs=6)  # fmt: skip


def test_chat_on_a_model_without_a_template_says_why(make_model):
    from tokenscope.serve import create_app

    with running(create_app(make_model("tiny"), name="plain")) as root:
        plain = openai.OpenAI(base_url=f"{root}/v1", api_key="none", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="has no chat template"):
            plain.chat.completions.create(model="plain", messages=[{"role": "user",
                                                                    "content": "hi"}])  # fmt: skip
        with pytest.raises(openai.NotFoundError, match="no POST /v1/embeddings"):
            plain.embeddings.create(model="plain", input="hi")


def test_the_server_socket_sends_small_answers_at_once():
    """TCP_NODELAY, inherited by every accepted connection: without it a response written in
    two pieces waited 40 ms for the client's delayed acknowledgement (every request did)."""
    import socket

    from tokenscope.serve.server import listening_socket

    server = listening_socket("127.0.0.1", 0)
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        for s in (accepted, client, server):
            s.close()


def test_many_prompts_in_one_request_score_as_one_request_each(client, model):
    texts = [PROMPT, "Once upon a time", "a b c d", PROMPT + " Paris."]
    one = client.completions.create(model="tiny-chat", prompt=texts, max_tokens=0, echo=True,
                                    logprobs=2)  # fmt: skip
    for choice, text in zip(one.choices, texts, strict=True):
        alone = client.completions.create(model="tiny-chat", prompt=text, max_tokens=0,
                                          echo=True, logprobs=2).choices[0]  # fmt: skip
        assert choice.text == alone.text == text
        mine, ref = choice.logprobs.token_logprobs, alone.logprobs.token_logprobs
        assert mine[0] is None and ref[0] is None
        assert mine[1:] == pytest.approx(ref[1:], abs=1e-5)
