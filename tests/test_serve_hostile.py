"""`tokenscope serve` given hostile requests: sampling knobs at and past their edges, numbers that
JSON reads as infinity, text that is not text, bodies nested 100,000 levels deep. Each gets a
correct answer or a 400 in the server's one error shape naming what is wrong, never a 500; and
no answer holds NaN or Infinity, which strict JSON parsers (the OpenAI SDK's) refuse."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

import pytest

from .serve_run import running


@pytest.fixture(scope="module")
def model(make_model):
    return make_model("tiny", seed=3)


@pytest.fixture(scope="module")
def root(model):
    from tokenscope.serve import create_app

    with running(create_app(model, name="tiny", max_logprobs=5)) as address:
        yield address


def strict(data: bytes):
    def refuse(constant):
        raise AssertionError(f"{constant} in an answer")

    return json.loads(data, parse_constant=refuse)


def post(root, path, body) -> tuple[int, dict]:
    """(status, answer) of a POST of `body`: bytes as they are, anything else as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(root + path, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, strict(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, strict(e.read())


def refused(status, answer, param=None) -> str:
    """The message of a 400 in the server's error shape (OpenAI's), naming `param`."""
    assert status == 400, answer
    assert set(answer) == {"error"}, answer
    error = answer["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400, error
    assert error["param"] == param, error
    return error["message"]


def completion(root, **fields) -> tuple[int, dict]:
    return post(root, "/v1/completions", {"prompt": "The capital of", "max_tokens": 5, **fields})


# ----- 1. sampling extremes -------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-308, 1e-45, 5e-324, 1e-6])
def test_a_tiny_temperature_is_greedy(root, temperature):
    greedy = completion(root, temperature=0)
    status, answer = completion(root, temperature=temperature)
    assert status == 200, answer
    assert answer["choices"][0]["text"] == greedy[1]["choices"][0]["text"]


@pytest.mark.parametrize(
    "knobs",
    [
        {"repetition_penalty": 1e-300},
        {"repetition_penalty": 100, "temperature": 1e-5},
        {"top_k": 10**9, "temperature": 0.5},
        {"top_p": 1e-300, "min_p": 1.0},
        {"top_p": 5e-324, "temperature": 100},
    ],
)
def test_knobs_at_their_edges_answer(root, knobs):
    status, answer = completion(root, seed=1, logprobs=3, **knobs)
    assert status == 200, answer
    assert answer["choices"][0]["finish_reason"] in ("length", "stop")


@pytest.mark.parametrize(
    "field, raw",
    [
        ("temperature", b"NaN"),
        ("temperature", b"Infinity"),
        ("temperature", b"1e999"),  # (Python reads it as infinity)
        ("temperature", b"-1e999"),
        ("top_p", b"NaN"),
        ("min_p", b"-Infinity"),
        ("repetition_penalty", b"1e999"),
        ("repetition_penalty", b"NaN"),
    ],
)
def test_numbers_that_are_not_finite_are_refused_naming_the_field(root, field, raw):
    body = b'{"prompt": "a", "' + field.encode() + b'": ' + raw + b"}"
    message = refused(*post(root, "/v1/completions", body), param=field)
    assert message.startswith(f"{field} should be a finite number"), message


@pytest.mark.parametrize(
    "field, value",
    [("repetition_penalty", 0), ("repetition_penalty", -1e-300), ("top_k", 10**10)],
)
def test_knobs_out_of_range_are_refused(root, field, value):
    assert field in refused(*completion(root, **{field: value}), param=field)


# ----- 2. text that is not text ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, param, where",
    [
        ("/v1/completions", b'{"prompt": "a\\ud800b"}', "prompt", "character 2 is \\ud800"),
        ("/v1/completions", b'{"prompt": ["ok", "\\udcff"]}', "prompt", "(text 2 of 2)"),
        ("/v1/completions", b'{"prompt": "a", "stop": "\\udfff"}', "stop[0]", "\\udfff"),
        ("/v1/completions", b'{"prompt": "a", "model": "\\ud800"}', "model", "\\ud800"),
        (
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "hi \\ud83d"}]}',
            "messages[0].content",
            "character 4 is \\ud83d, half of a surrogate pair",
        ),
        ("/tokenize", b'{"prompt": "caf\\udce9"}', "prompt", "the byte 0xE9, which is not UTF-8"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(root, path, body, param, where):
    message = refused(*post(root, path, body), param=param)
    assert message.startswith(f"{param} is not valid text") and where in message, message


def test_a_surrogate_pair_is_text(root):
    status, answer = post(root, "/tokenize", b'{"prompt": "ok \\ud83d\\udc4d"}')
    assert status == 200 and answer["count"] >= 1


# ----- 3. bodies the parser cannot read ------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_json_nested_without_end_is_a_400(root, depth):
    lists = b'{"model": "x", "prompt": ' + b"[" * depth + b"]" * depth + b"}"
    objects = b'{"prompt": "a", "user": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    for body in (lists, objects):
        message = refused(*post(root, "/v1/completions", body))
        assert message.startswith("the request body is nested too deeply to read"), message


def test_json_nested_just_within_what_python_reads_is_never_a_500(root):
    # Around Python's recursion limit the parser may succeed and what follows fail: every
    # depth gets a 400 in the same shape (a 404 for model "x", past the schema), never a 500.
    for depth in range(900, 1001, 10):
        for field in ("prompt", "stop", "user"):
            body = (
                b'{"model": "x", "prompt": "a", "' + field.encode() + b'": '
                + b"[" * depth + b"]" * depth + b"}"
            )  # fmt: skip
            status, answer = post(root, "/v1/completions", body)
            assert status in (400, 404) and set(answer) == {"error"}, (depth, field, answer)


@pytest.mark.parametrize(
    "body, words",
    [
        (b'{"prompt": "a", "top_k": ' + b"9" * 5000 + b"}", "a number too long to read"),
        (b'{"prompt": "caf\xe9"}', "not UTF-8 text"),
        (b'{"prompt": ', "not JSON"),
    ],
)
def test_a_body_the_parser_gives_up_on_is_a_400_saying_why(root, body, words):
    assert words in refused(*post(root, "/v1/completions", body))


def test_strings_past_their_limits_are_refused_shortly(root):
    from tokenscope.serve.schemas import MAX_NAME_CHARS, MAX_STOP_CHARS

    message = refused(*completion(root, model="m" * (MAX_NAME_CHARS + 1)), param="model")
    assert "at most 1000 characters" in message and len(message) < 200
    message = refused(*completion(root, stop=["s" * (MAX_STOP_CHARS + 1)]), param="stop[0]")
    assert len(message) < 200


# ----- 4. no NaN or Infinity in an answer -----------------------------------------------------


def test_strict_json_has_no_nan_or_infinity():
    from tokenscope.serve.strict_json import FLOOR, encoded

    value = {"a": [math.nan, math.inf, -math.inf, 0.5], "b": ("x", {"c": -math.inf}), "d": 1}
    assert strict(encoded(value)) == {"a": [None, None, FLOOR, 0.5], "b": ["x", {"c": FLOOR}],
                                      "d": 1}  # fmt: skip
    assert encoded({"t": "é\udcff"}) == b'{"t":"\\u00e9\\udcff"}'  # (UTF-8 cannot carry it)
    assert encoded({"t": "é", "p": -0.5}) == '{"t":"é","p":-0.5}'.encode()


class NonFinite:
    """The served model, with log-probabilities of the prompt as a damaged model gives them."""

    def __init__(self, model) -> None:
        self.model = model

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def prompt_logprobs_batch(self, batch, top_k=0):
        scored = self.model.prompt_logprobs_batch(batch, top_k)
        return [[(-math.inf, [(i, math.nan) for i, _ in top]) for _own, top in s] for s in scored]


def test_an_answer_never_holds_nan_or_infinity(model):
    from tokenscope.serve import create_app

    with running(create_app(NonFinite(model), name="tiny", max_logprobs=5)) as address:
        body = {"prompt": "The capital of", "max_tokens": 2, "echo": True, "logprobs": 2}
        status, answer = post(address, "/v1/completions", body)  # (post parses strictly)
        assert status == 200, answer
        logprobs = answer["choices"][0]["logprobs"]
        assert logprobs["token_logprobs"][1] == -9999.0
        assert logprobs["content"][1]["top_logprobs"][0]["logprob"] is None
        request = urllib.request.Request(
            address + "/v1/completions", json.dumps({**body, "stream": True}).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as stream:
            events = [line[6:] for line in stream if line.startswith(b"data: {")]
        echoed = strict(events[0])["choices"][0]["logprobs"]
        assert echoed["token_logprobs"][1] == -9999.0
