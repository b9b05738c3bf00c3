"""`tokenscope serve`: a model opened in Tokenscope as an OpenAI-compatible server (FastAPI and
uvicorn, in a process of its own), read back by the same client the window uses. Its numbers
must be the local engine's: the top-k, the prompt's log-probabilities (echo), generation; its
refusals one shape, naming the field; and the model is only ever called off the event loop,
under the app's lock."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tokenscope.lm.remote import RemoteError, RemoteModel
from tokenscope.lm.sampling import GREEDY

pytestmark = pytest.mark.slow


class Served:
    def __init__(self, target, *extra, env=None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokenscope", "serve", "-m", str(target), "--port", "0",
             "--dtype", "float32", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"no server: {line!r} {self.proc.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, make_model):
    return make_model("tiny").save(tmp_path_factory.mktemp("served") / "tiny")


@pytest.fixture(scope="module")
def served(folder):
    server = Served(folder)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def local(folder):
    import tokenscope

    return tokenscope.load_model(str(folder), dtype="float32")


def test_the_client_finds_a_tokenscope_server_and_reads_it_exactly(served, local):
    model = RemoteModel(served)
    s, c = model.info, model.capabilities
    assert s.kind == "Tokenscope" and s.max_top_k == 20 and s.prompt_logprobs and s.tokenizes
    assert c.exact_scores and c.shows_tokens and not c.internals
    assert s.context_length == local.config.context_length
    assert s.parameters == local.parameter_count == model.facts().parameters
    for prompt in ("The capital of Indonesia is", "Once upon a time", "a"):
        remote = model.predict_next_token_probabilities(prompt)
        mine = local.predict_next_token_probabilities(prompt).top(20)
        # With ids (the legacy keys alone would merge two tokens that share a text).
        assert [t.token_id for t in remote.top(20)] == [t.token_id for t in mine]
        assert [t.probability for t in remote.top(20)] == pytest.approx(
            [t.probability for t in mine], rel=1e-5, abs=1e-7
        )
        assert remote.other == pytest.approx(1 - sum(t.probability for t in mine), abs=1e-5)


def test_echoed_prompt_log_probs_score_an_answer_as_the_engine_does(served, local):
    model = RemoteModel(served)
    for context, answer in (("The capital of Indonesia is", " Jakarta"), ("ab", " cd ef")):
        score = model.score_continuation(context, answer)
        assert score.probability == pytest.approx(
            local.score_continuation(context, answer).probability, rel=1e-4
        )
    text = [t.text for t in model.tokenize("The capital")]
    assert text == [t.text for t in local.tokenize("The capital")]


def test_greedy_generation_streams_the_engines_tokens(served, local):
    from tokenscope.lm.sampling import SamplingSettings

    model = RemoteModel(served)
    greedy = SamplingSettings(temperature=0.0)
    steps = list(model.generate("The capital of", max_tokens=8, sampling=greedy, top_k=20))
    mine = list(local.generate("The capital of", max_tokens=8, sampling=greedy))
    assert [s.token_id for s in steps] == [s.token_id for s in mine]
    # The text streamed is the engine's decoding: a character split across tokens comes whole
    # with its last token (never a replacement character), special tokens never.
    expected = "".join("" if local.tokenizer.is_special(s.token_id) else s.text for s in mine)
    assert "".join(s.text for s in steps) == expected
    assert steps[0].probability == pytest.approx(mine[0].probability, rel=1e-5)
    assert len(steps[0].top_raw) == 20 and steps[0].token_id == mine[0].token_id


def test_a_stop_sequence_ends_a_remote_generation_and_held_back_text_still_arrives(served, local):
    model = RemoteModel(served)
    mine = local.generate("The capital of", max_tokens=16, sampling=GREEDY)
    steps = list(mine)
    text = "".join("" if local.tokenizer.is_special(s.token_id) else s.text for s in steps)
    text += mine.flushed
    assert len(text) >= 4
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    gen = model.generate("The capital of", max_tokens=16, sampling=GREEDY, stop=[stop])
    list(gen)
    assert gen.text == text[: text.index(stop)] and gen.stop_reason == "stop_string"
    # A stop sequence that begins with the last character but never comes: the server holds
    # that character back to the end, and it arrives with no token of its own.
    never = text[-1] + "\x01never"
    gen = model.generate("The capital of", max_tokens=len(steps), sampling=GREEDY, stop=[never])
    got = list(gen)
    assert gen.text == text and gen.flushed.endswith(text[-1])
    assert [s.token_id for s in got] == [s.token_id for s in steps]
    assert gen.stop_reason == mine.stop_reason


def test_refusals_are_clear(served, local):
    model = RemoteModel(served)
    with pytest.raises(RemoteError, match=r"prompt has \d+ tokens; this model's context is"):
        model.predict_next_token_probabilities("word " * (local.config.context_length + 5))

    def post(body):
        request = urllib.request.Request(
            served.removesuffix("/v1") + "/v1/completions", json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())["error"]["message"]
        return 200, ""

    assert post({"prompt": "a", "logprobs": 50}) == (
        400, "Requested logprobs of 50, which is greater than max allowed: 20")  # fmt: skip
    assert post({"prompt": [10**9]})[0] == 400
    assert post({"prompt": "a", "model": "other"})[0] == 404
    assert post({"prompt": "a", "temperature": -1})[0] == 400


def test_a_key_is_required_when_asked_for(folder, monkeypatch):
    import os

    server = Served(folder, "--api-key-env", "SERVE_KEY", env={**os.environ, "SERVE_KEY": "k-1"})
    try:
        monkeypatch.delenv("TOKENSCOPE_API_KEY", raising=False)
        with pytest.raises(RemoteError, match=r"refused the request \(401"):
            RemoteModel(server.url)
        assert RemoteModel(server.url, api_key="k-1").capabilities.kind == "Tokenscope"
    finally:
        server.stop()


def test_a_sweep_through_the_service_equals_the_local_sweep(served, local):
    import threading

    from tokenscope.lm.fewshot import Example, FewShotPrompt, sweep
    from tokenscope.service import JobRunner, Load, ModelService, Sweep
    from tokenscope.service.records import SweepSeries

    prompt = FewShotPrompt(
        examples=(Example("France", "Paris"), Example("Japan", "Tokyo")),
        query="Indonesia",
        expected="Jakarta",
        template="The capital of {input} is {output}.",
    )
    events, finished = [], threading.Condition()

    def sink(event) -> None:
        with finished:
            events.append(event)
            finished.notify_all()

    service = ModelService()
    runner = JobRunner(service, sink)
    thread = threading.Thread(target=runner.serve)
    thread.start()
    try:

        def finish(ticket) -> None:
            with finished:
                assert finished.wait_for(
                    lambda: any(e.ticket == ticket.id and e.kind == "finished" for e in events),
                    timeout=120,
                )

        finish(runner.submit(Load(served), 0))
        finish(runner.submit(Sweep(prompt), 1))
    finally:
        runner.shutdown()
        thread.join(30)
    series = [e.payload for e in events if isinstance(e.payload, SweepSeries)]
    assert series, [e for e in events if e.kind == "errored"]
    mine = sweep(local, prompt)
    assert [p.probability for p in series[0].points] == pytest.approx(
        [p.probability for p in mine], rel=1e-4
    )


# ----- the server's own answers: request bodies, routes, threads ----------------------------------


def call(root, path, body=None, *, data=None, method=None, headers=None):
    """(status, JSON answer) of one request to the server at `root`: `body` sent as JSON, or
    `data` as it is."""
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(root + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def streamed(root, body):
    """The payloads of a streamed completion's events, up to [DONE]."""
    request = urllib.request.Request(
        root + "/v1/completions", json.dumps({**body, "stream": True}).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    payloads = []
    with urllib.request.urlopen(request, timeout=60) as answer:
        for line in answer:
            if line.startswith(b"data: "):
                if line.strip() == b"data: [DONE]":
                    return payloads
                payloads.append(json.loads(line[6:]))
    raise AssertionError(f"the stream ended without [DONE] after {len(payloads)} events")


def refused(status, message, param=None):
    """The answer to a refused request: OpenAI's error shape."""
    kind = {401: "authentication_error"}.get(status, "invalid_request_error")
    return status, {"error": {"message": message, "type": kind, "param": param, "code": status}}


def test_a_value_of_the_wrong_type_is_refused_naming_the_field(served):
    root = served.removesuffix("/v1")
    assert call(root, "/v1/completions", {"prompt": "a", "max_tokens": "16"}) == refused(
        400, 'max_tokens should be a valid integer (got "16")', "max_tokens"
    )
    # A whole number is strict: not 16.0 and not true.
    assert call(root, "/v1/completions", {"prompt": "a", "logprobs": True}) == refused(
        400, "logprobs should be a valid integer (got true)", "logprobs"
    )
    assert call(root, "/v1/completions", {"prompt": {"text": "a"}}) == refused(
        400,
        "prompt should be text, a list of texts, a non-empty list of token ids or a list of "
        'such lists (got {"text": "a"})',
        "prompt",
    )  # fmt: skip
    assert call(root, "/v1/completions", {"prompt": "a", "echo": "perhaps"}) == refused(
        400, 'echo should be a valid boolean, unable to interpret input (got "perhaps")', "echo"
    )
    assert call(root, "/v1/completions", {"max_tokens": 1}) == refused(
        400, "prompt is required", "prompt"
    )
    assert call(root, "/tokenize", {"content": 5}) == refused(
        400, "content should be a valid string (got 5)", "content"
    )


def test_a_value_out_of_range_is_refused_with_what_is_allowed(served, local):
    root = served.removesuffix("/v1")
    assert call(root, "/v1/completions", {"prompt": "a", "temperature": 500}) == refused(
        400, "temperature should be less than or equal to 100 (got 500)", "temperature"
    )
    assert call(root, "/v1/completions", {"prompt": "a", "top_p": 0}) == refused(
        400, "top_p should be greater than 0 (got 0)", "top_p"
    )
    window = local.config.context_length
    assert call(root, "/v1/completions", {"prompt": "a", "max_tokens": window + 1}) == refused(
        400, f"max_tokens should be at most {window}, this model's context (got {window + 1})",
        "max_tokens",
    )  # fmt: skip
    assert call(root, "/v1/completions", {"prompt": [1, 10**9]}) == refused(
        400, f"a token id is outside the vocabulary (0..{local.config.vocab_size - 1})", "prompt"
    )
    # Every problem of a body, on one line; `param` names the first.
    status, answer = call(root, "/v1/completions", {"prompt": "a", "top_k": -2, "seed": -1})
    assert (status, answer["error"]["param"]) == (400, "top_k")
    assert answer["error"]["message"] == (
        "top_k should be greater than or equal to -1 (got -2); "
        "seed should be greater than or equal to 0 (got -1)"
    )


def test_unknown_routes_and_methods_answer_in_the_same_shape(served):
    root = served.removesuffix("/v1")
    assert call(root, "/v2/completions", {"prompt": "a"}) == refused(
        404,
        "this server has no POST /v2/completions; it answers GET /v1/models, GET /tokenscope, "
        "POST /tokenize, POST /detokenize, GET /tokenizer_info, POST /v1/completions, "
        "POST /v1/chat/completions",
    )
    assert call(root, "/v1/completions") == refused(405, "/v1/completions answers POST, not GET")


def test_a_body_that_is_not_a_json_object_is_refused_clearly(served):
    root = served.removesuffix("/v1")
    json_type = {"Content-Type": "application/json"}
    status, answer = call(root, "/v1/completions", data=b'{"prompt": ', headers=json_type)
    assert status == 400 and answer["error"]["param"] is None
    assert answer["error"]["message"].startswith("the request body is not JSON (")
    not_an_object = refused(
        400, "the request body must be a JSON object, sent as Content-Type: application/json"
    )
    assert call(root, "/v1/completions", ["a"]) == not_an_object
    # (A form, as `curl -d` sends it: a web page may send one to a local server unasked.)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(root, "/v1/completions", data=b'{"prompt": "a"}', headers=form) == not_an_object


def test_null_is_the_default_and_fields_for_other_servers_are_ignored(served, local):
    root = served.removesuffix("/v1")
    body = {"prompt": "The capital of", "max_tokens": 3, "temperature": 0.0, "logprobs": None,
            "top_p": None, "seed": None, "user": "someone", "repeat_penalty": 1.0}  # fmt: skip
    status, answer = call(root, "/v1/completions", body)
    assert status == 200 and answer["choices"][0]["logprobs"] is None
    greedy = local.generate("The capital of", max_tokens=3, sampling=GREEDY)
    assert answer["choices"][0]["text"] == "".join(
        local.tokenizer.token_text(s.token_id) for s in greedy
    )
    # /tokenize under llama.cpp's names too.
    status, answer = call(root, "/tokenize", {"content": "The capital", "add_special": True})
    assert status == 200 and answer["tokens"] == local._context_ids("The capital")


def test_a_stream_sends_what_the_whole_answer_holds(served):
    """Echo with max_tokens 0 (how harnesses score a text), and a greedy completion."""
    root = served.removesuffix("/v1")
    for body in (
        {"prompt": "The capital of Indonesia is", "max_tokens": 0, "echo": True, "logprobs": 5},
        {"prompt": "Once upon a time", "max_tokens": 6, "echo": True, "logprobs": 3,
         "temperature": 0},
        {"prompt": "ab", "max_tokens": 4, "logprobs": 0, "temperature": 0},
    ):  # fmt: skip
        status, whole = call(root, "/v1/completions", body)
        assert status == 200
        events = streamed(root, body)
        choices = [e["choices"][0] for e in events]
        assert "".join(c["text"] for c in choices) == whole["choices"][0]["text"]
        assert choices[-1]["finish_reason"] == whole["choices"][0]["finish_reason"]
        joined = {
            key: [v for c in choices[:-1] for v in c["logprobs"][key]]
            for key in whole["choices"][0]["logprobs"]
        }
        assert joined == whole["choices"][0]["logprobs"]
    assert whole["choices"][0]["logprobs"]["top_logprobs"] == [None] * 4  # (logprobs 0)


class Watched:
    """A model that notes, at each call, whether it runs on an event loop and whether the
    app's lock is held."""

    CALLS = ("_context_ids", "encode", "prompt_logprobs_batch", "generate")

    def __init__(self, model) -> None:
        self.model, self.lock, self.calls = model, None, []

    def note(self, name: str) -> None:
        import asyncio

        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        self.calls.append((name, on_loop, self.lock.locked()))

    def __getattr__(self, name: str):
        value = getattr(self.model, name)
        if name not in self.CALLS:
            return value

        def watched(*args, **kwargs):
            self.note(name)
            out = value(*args, **kwargs)
            return WatchedSteps(out, self) if name == "generate" else out

        return watched


class WatchedSteps:
    def __init__(self, gen, watched: Watched) -> None:
        self.gen, self.watched = gen, watched

    def __iter__(self):
        return self

    def __next__(self):
        self.watched.note("step")
        return next(self.gen)

    def __getattr__(self, name: str):
        return getattr(self.gen, name)


def running(app):
    """`app` served by uvicorn on a thread of this process; yields its address."""
    import contextlib
    import socket
    import threading

    import uvicorn

    @contextlib.contextmanager
    def run():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # connections wait from now on, while the server starts
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()

    return run()


def test_the_model_is_called_off_the_event_loop_and_under_the_lock(local):
    from tokenscope.serve import create_app

    model = Watched(local)
    app = create_app(model, name="tiny", max_logprobs=5)
    model.lock = app.state.served.lock
    with running(app) as root:
        assert call(root, "/tokenize", {"prompt": "ab", "add_special_tokens": True})[0] == 200
        assert call(root, "/tokenize", {"prompt": "ab"})[0] == 200
        body = {"prompt": "The capital", "max_tokens": 3, "echo": True, "logprobs": 5,
                "temperature": 0}  # fmt: skip
        assert call(root, "/v1/completions", body)[0] == 200
        # echo, the tokens (greedy: as many as the engine makes, 3 unless it ends first), finish
        tokens = len(list(local.generate("The capital", max_tokens=3, sampling=GREEDY)))
        assert len(streamed(root, body)) == 2 + tokens and tokens >= 1
    assert {name for name, _, _ in model.calls} == {*Watched.CALLS, "step"}
    assert [c for c in model.calls if c[1:] != (False, True)] == []


def test_without_the_key_nothing_is_told(local):
    from tokenscope.serve import create_app

    with running(create_app(local, name="tiny", api_key="k-1")) as root:
        no_key = refused(401, "invalid or missing API key")
        assert call(root, "/v2/nothing") == no_key
        assert call(root, "/tokenscope", headers={"Authorization": "Bearer k-2"}) == no_key
        assert call(root, "/v2/nothing", headers={"Authorization": "Bearer k-1"})[0] == 404
        status, about = call(root, "/tokenscope", headers={"Authorization": "Bearer k-1"})
        assert status == 200 and about["name"] == "tiny" and about["max_logprobs"] == 20
        assert about["context_length"] == local.config.context_length
