"""The model service on a model served over HTTP, as the window uses it: llama.cpp's own server
(xllamacpp) on SmolLM2, and a small local server for echoed prompt log-probs and faults."""

from __future__ import annotations

import math
import re
import time

import pytest

from tokenscope.lm.fewshot import Example, FewShotPrompt
from tokenscope.lm.sampling import SamplingSettings
from tokenscope.service import FewShotPreview, Generate, Load, Predict, Sweep, Tokenize
from tokenscope.service.records import GenerationDone, GenerationStarted, SweepSeries

pytestmark = pytest.mark.slow

PROMPT = "The capital of Indonesia is"
GREEDY = SamplingSettings(temperature=0.0)


def test_a_server_model_loads_predicts_and_tokenizes_through_the_service(harness, llama):
    info = harness.load(llama)
    c = info.capabilities
    assert (c.kind, c.label, info.device) == ("llama.cpp", "remote · top-100 · raw", "server")
    assert not c.internals and not c.full_vocabulary and c.can_score and c.exact_scores
    assert info.parameters == 134_515_008 and info.context_length == 1024
    assert info.target.startswith(llama + "#") and info.name.endswith("Q4_1.gguf @ " + llama[7:-3])

    done = harness.finished(harness.submit(Predict(PROMPT, top_k=5, watch=" Jak")))
    view = done.payload
    assert done.outcome == "completed" and len(view.rows) == 5
    assert view.rows[0].display == "␣Jak" and view.label == "remote · top-100 · raw"
    assert sum(r.probability for r in view.rows) + view.other == pytest.approx(1.0)
    # listed: read off the list
    assert view.watch_probability == pytest.approx(view.rows[0].probability)
    assert view.context_ids == () and not view.approximate

    # Knobs on the same text: re-applied to the kept list, no second request.
    knobs = SamplingSettings(top_k=2)
    again = harness.finished(harness.submit(Predict(PROMPT, knobs, top_k=5))).payload
    assert not again.recomputed
    assert [r.probability for r in again.rows] == [r.probability for r in view.rows]
    assert again.rows[0].sampled_probability + again.rows[1].sampled_probability == pytest.approx(1)
    assert again.rows[2].sampled_probability == 0.0 and not again.approximate  # top-2 of 100

    tokens = harness.finished(harness.submit(Tokenize("The café is"))).payload
    assert [(t.display, t.start, t.end) for t in tokens] == [
        ("The", 0, 3), ("␣café", 3, 8), ("␣is", 8, 11)]  # fmt: skip


def test_generation_streams_steps_and_a_chosen_alternative_continues_as_text(harness, llama):
    harness.load(llama)
    ticket = harness.submit(Generate(PROMPT, 6, GREEDY))
    done = harness.finished(ticket)
    records = harness.yielded(ticket)
    assert done.outcome == "completed" and isinstance(records[0], GenerationStarted)
    steps = records[1:]
    assert len(steps) == 6 and "".join(s.text for s in steps).startswith(" Jakarta")
    assert isinstance(done.payload, GenerationDone) and done.payload.reason == "max_tokens"
    first = steps[0]
    assert first.display == "␣Jak" and len(first.top_raw) == 20  # as many as a local model keeps
    assert first.probability == pytest.approx(first.top_raw[0].probability)
    assert first.sampled_probability == 1.0  # greedy

    alternative = first.top_raw[1]
    ticket = harness.submit(Generate(PROMPT, 4, GREEDY, forced=(first, alternative.token_id)))
    assert harness.finished(ticket).outcome == "completed"
    branch = harness.yielded(ticket)[1:]
    assert branch[0].text == alternative.text and branch[0].probability == alternative.probability
    # The rest is what the server itself continues from the prompt and that alternative.
    direct = harness.submit(Generate(PROMPT + alternative.text, 3, GREEDY))
    harness.finished(direct)
    assert [s.text for s in branch[1:]] == [s.text for s in harness.yielded(direct)[1:]]


def test_cancel_stops_a_request_waiting_on_the_server(harness, faulty):
    harness.load(faulty.url)
    faulty.mode = "slow"
    ticket = harness.submit(Predict("x"))
    assert faulty.holding.wait(10)  # the request is waiting on the server
    started = time.perf_counter()
    ticket.cancel()
    assert harness.finished(ticket, timeout=10).outcome == "cancelled"
    assert time.perf_counter() - started < 5  # not the server's 30 s
    faulty.release.set()
    faulty.mode = "ok"
    assert harness.finished(harness.submit(Predict("x"))).outcome == "completed"


def test_a_stream_cut_mid_way_fails_after_the_tokens_that_came(harness, faulty):
    harness.load(faulty.url)
    faulty.mode = "cut"
    ticket = harness.submit(Generate("x", 10))
    assert harness.finished(ticket).outcome == "failed"
    assert [s.text for s in harness.yielded(ticket)[1:]] == [" a", " b"]
    errors = [e.payload for e in harness.of(ticket, "errored")]
    assert any("the tokens that arrived are kept" in m for m in errors), errors


def _words_prompt() -> FewShotPrompt:
    return FewShotPrompt(
        examples=(Example("cat", "kucing"), Example("dog", "anjing"), Example("bird", "burung")),
        query="cloud",
        expected="awan",
        template="{input} = {output}",
    )


def _echo_probability(prompt_text: str, continuation: str) -> float:
    """What the local echo server gives `continuation`: its words are tokens, and word i of the
    whole text has log-probability -0.5 i (remote_servers.FaultyServer)."""
    words = re.findall(r"\s*\S+", prompt_text + continuation)
    first = len(re.findall(r"\s*\S+", prompt_text))
    return math.exp(sum(-0.5 * i for i in range(first, len(words))))


def test_a_sweep_scores_the_answer_from_a_servers_prompt_log_probs(harness, faulty):
    faulty.echo = True
    harness.load(faulty.url)
    prompt = _words_prompt()
    ticket = harness.submit(Sweep(prompt))
    assert harness.finished(ticket).outcome == "completed"
    series = [r for r in harness.yielded(ticket) if isinstance(r, SweepSeries)]
    points = series[0].points
    assert [p.shots for p in points] == [0, 1, 2, 3]
    for p in points:
        text = prompt.with_shots(p.shots).assemble().text
        assert p.probability == pytest.approx(_echo_probability(text, " awan"))
        assert p.rank == 1 and p.top_prediction == " awan"

    preview = harness.finished(harness.submit(FewShotPreview(prompt))).payload
    assert preview.expected.probability == pytest.approx(points[-1].probability)
    assert preview.note == ""


def test_llama_cpp_sweeps_through_its_top_k(harness, llama):
    from tokenscope.lm.fewshot import load_prompt
    from tokenscope.lm.remote import RemoteModel

    info = harness.load(llama)
    assert info.capabilities.can_score
    prompt = load_prompt("capitals")
    ticket = harness.submit(Sweep(prompt, max_shots=2))
    assert harness.finished(ticket, timeout=120).outcome == "completed"
    (series,) = [r for r in harness.yielded(ticket) if isinstance(r, SweepSeries)]
    direct = RemoteModel(llama)
    for p in series.points:
        shot = prompt.with_shots(p.shots)
        score = direct.score_continuation(shot.assemble().text, shot.answer_text(prompt.expected))
        assert p.probability == pytest.approx(score.probability, rel=1e-6)
    assert series.points[-1].probability > series.points[0].probability  # examples help

    preview = harness.finished(harness.submit(FewShotPreview(prompt))).payload
    assert preview.expected is not None and preview.chart.rows


def test_a_server_that_cannot_score_says_so(harness, faulty):
    harness.load(faulty.url)  # no echo, no /tokenize
    prompt = _words_prompt()
    preview = harness.finished(harness.submit(FewShotPreview(prompt))).payload
    assert preview.expected is None and preview.chart.rows
    assert "returns no log-probabilities of the prompt and does not show its tokens" in (
        preview.note
    )
    ticket = harness.submit(Sweep(prompt))
    assert harness.finished(ticket).outcome == "failed"
    errors = " ".join(e.payload for e in harness.of(ticket, "errored"))
    assert "cannot score the expected answer (vLLM, SGLang and llama.cpp can)" in errors
    view = harness.finished(harness.submit(Predict("x", watch=" not listed"))).payload
    assert view.watch_probability is None and "cannot score" in view.watch_note


def test_a_server_that_is_not_running_leaves_the_current_model(harness, checkpoint):
    import socket

    harness.load(checkpoint)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ticket = harness.submit(Load(f"http://127.0.0.1:{port}/v1"))
    assert harness.finished(ticket).outcome == "failed"
    errors = " ".join(e.payload for e in harness.of(ticket, "errored"))
    assert "nothing answers at" in errors and "is the server running?" in errors
    assert harness.service.info.target == str(checkpoint)
    assert harness.service.info.capabilities.internals
