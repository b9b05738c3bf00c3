"""`tokenscope serve`: a model opened in Tokenscope as an OpenAI-compatible server (FastAPI and
uvicorn, in a process of its own), read back by the same client the window uses. Its numbers
must be the local engine's: the top-k, the prompt's log-probabilities (echo), generation."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tokenscope.lm.remote import RemoteError, RemoteModel

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
    c = model.capabilities
    assert c.kind == "Tokenscope" and c.max_top_k == 20 and c.prompt_logprobs and c.tokenizes
    assert c.context_length == local.config.context_length
    assert c.parameters == local.parameter_count
    for prompt in ("The capital of Indonesia is", "Once upon a time", "a"):
        remote = model.predict_next_token_probabilities(prompt)
        mine = local.predict_next_token_probabilities(prompt).top(20)
        # With ids (the legacy keys alone would merge two tokens that share a text).
        assert [t.token_id for t in remote.top()] == [t.token_id for t in mine]
        assert [t.probability for t in remote.top()] == pytest.approx(
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
    text = [t.text for t in model.tokenize("The capital", scope=None)]
    assert text == [t.text for t in local.tokenize("The capital")]


def test_greedy_generation_streams_the_engines_tokens(served, local):
    from tokenscope.lm.sampling import SamplingSettings

    model = RemoteModel(served)
    greedy = SamplingSettings(temperature=0.0)
    steps = list(model.generate("The capital of", 8, sampling=greedy))
    mine = list(local.generate("The capital of", max_tokens=8, sampling=greedy))
    assert [s.text for s in steps] == [local.tokenizer.token_text(s.token_id) for s in mine]
    assert steps[0].probability == pytest.approx(mine[0].probability, rel=1e-5)
    assert len(steps[0].top) == 20


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
