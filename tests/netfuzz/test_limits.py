"""Every request ends and every read is bounded (tokenscope.lm.net), whatever a server does:
one named case per finding of issue 27's campaign against model servers. The fuzz suite
(test_network_fuzz.py) tries many more of each kind."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tokenscope.escapes import printable
from tokenscope.lm.cancel import Cancelled, CancelToken
from tokenscope.lm.net import Limits, NetError, open_call
from tokenscope.lm.remote import RemoteError, RemoteModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import HostileServer, drip, forever, raw, respond, silent, stream
from net_cases import ModelServer, _event

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


def one_line(message: str) -> bool:
    return "\n" not in message and printable(message) == message


def test_a_byte_a_second_cannot_hold_a_request_past_its_deadline():
    body = b'{"data": [' + b" " * 100 + b"]}"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with HostileServer(lambda request: drip(answer, 0.1)) as server:
        began = time.monotonic()
        limits = Limits(total_s=1.0, read_s=0.5)
        with (
            pytest.raises(NetError, match="did not finish answering within 1 s") as e,
            open_call(server.url, limits=limits) as call,
        ):
            call.read(1 << 20)
        assert e.value.expired and time.monotonic() - began < 3


def test_a_declared_length_beyond_the_bound_is_refused_before_reading():
    with HostileServer(lambda request: respond(200, b"{}", length=10**15)) as server:
        with (
            pytest.raises(NetError, match=r"declares an answer of .* GB, more than") as e,
            open_call(server.url, limits=Limits(total_s=5)) as call,
        ):
            call.read(1 << 20, "an answer")
        assert e.value.reason == "too large"


def test_an_endless_body_stops_at_the_bound():
    with (
        HostileServer(lambda request: stream(200, forever(b"a" * 65536))) as server,
        pytest.raises(NetError, match="larger than 1 MB"),
        open_call(server.url, limits=Limits(total_s=10)) as call,
    ):
        call.read(1 << 20, "an answer")


def test_a_cancel_wakes_a_request_waiting_on_a_silent_server():
    token = CancelToken()
    with HostileServer(lambda request: silent()) as server:
        threading.Timer(0.3, token.cancel).start()
        began = time.monotonic()
        with (
            pytest.raises(Cancelled),
            open_call(server.url, limits=Limits(total_s=30, read_s=30), cancel=token),
        ):
            pass
        assert time.monotonic() - began < 5


def test_a_malformed_status_line_becomes_one_printable_line():
    status = b"HTTP/1.1 2\x1b[31m00\x1b]0;pwned\x07 OK\n\x1b[2J\r\n\r\n"
    with HostileServer(lambda request: raw(status)) as server, pytest.raises(RemoteError) as e:
        RemoteModel(server.url + "/v1", timeout=1.0)
    assert one_line(str(e.value)) and "\\x1b" in str(e.value)


@pytest.mark.slow
def test_a_server_that_lists_its_models_and_then_says_nothing_is_given_up_within_15_s():
    """It took 182 s: every question asked while connecting waited its own 60 s."""

    def script(request):
        return respond(200, MODELS) if request.path == "/v1/models" else silent()

    with HostileServer(script) as server:
        began = time.monotonic()
        with pytest.raises(RemoteError, match="within 15 s while connecting"):
            RemoteModel(server.url + "/v1")  # the default timeout: 60 s a read
        assert time.monotonic() - began < 20


def test_a_stream_that_ignores_max_tokens_and_never_ends_stops_after_them():
    good = ModelServer()

    def script(request):
        if good.route(request) == "stream":
            event = b"data: " + __import__("json").dumps(_event(" x")).encode() + b"\n\n"
            return stream(200, forever(event))
        return good.answer(request)

    with HostileServer(script) as server:
        steps = list(RemoteModel(server.url + "/v1", timeout=2.0).generate("ab", max_tokens=3))
    assert len(steps) == 3


def test_blank_lines_forever_end_the_stream_with_a_message():
    good = ModelServer()

    def script(request):
        return stream(200, forever(b"\n")) if good.route(request) == "stream" else (
            good.answer(request))  # fmt: skip

    with HostileServer(script) as server:
        model = RemoteModel(server.url + "/v1", timeout=2.0)
        with pytest.raises(RemoteError, match="lines for a stream of 3 tokens"):
            list(model.generate("ab", max_tokens=3))


@pytest.mark.parametrize(
    "logprobs, message",
    [
        ({"tokens": [" a"], "top_logprobs": [{" a": float("inf")}]}, "probability above 1"),
        ({"tokens": [" a"], "top_logprobs": [{" a": 700}]}, "log-probability of 700.0"),
        ({"tokens": [" a"], "top_logprobs": [[" a", -1]]}, "entries that are not objects"),
        ({"content": [{"token": " a", "logprob": -1, "bytes": [1.5]}]}, "not a list of bytes"),
        ({"content": "x"}, "content that is not a list"),
        ({"tokens": [" a", " b"], "top_logprobs": [{" a": -0.1, " b": -0.2, " c": -0.3}] * 2},
         "add up to 2.4"),
    ],
)  # fmt: skip
def test_values_a_server_gets_wrong_are_named(logprobs, message):
    good = ModelServer()

    def script(request):
        if good.route(request) == "completion" and b'"logprobs": 20' in request.body:
            choice = {"index": 0, "text": " a", "logprobs": logprobs, "finish_reason": "length"}
            return respond(200, {"choices": [choice]})
        return good.answer(request)

    with HostileServer(script) as server:
        model = RemoteModel(server.url + "/v1", timeout=2.0)
        with pytest.raises(RemoteError, match=message) as e:
            model.predict_next_token_probabilities("ab")
    assert str(e.value).startswith(server.url) and one_line(str(e.value))


def test_choices_of_the_wrong_shape_are_one_clear_line():
    good = ModelServer()
    for choices in ("x", [None], []):

        def script(request, choices=choices):
            if good.route(request) == "completion" and b'"logprobs": 20' in request.body:
                return respond(200, {"choices": choices})
            return good.answer(request)

        with HostileServer(script) as server:
            model = RemoteModel(server.url + "/v1", timeout=2.0)
            with pytest.raises(RemoteError, match="answered without choices"):
                model.predict_next_token_probabilities("ab")
