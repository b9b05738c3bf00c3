"""A model on a server: llama.cpp's own server (the package xllamacpp, in a process of its
own, on the SmolLM2 file) against the local engine, and each network fault produced for real:
a port with nothing listening, and a small local server that answers 401, 429, 500, broken
JSON, no log-probabilities, or cuts its stream."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from tokenscope.lm import SamplingSettings, TokenProbability, load_model
from tokenscope.lm.cancel import Cancelled, CancelToken
from tokenscope.lm.remote import RemoteDistribution, RemoteError, RemoteModel
from tokenscope.lm.remote.parsing import STAND_IN_BASE

from .prompts import PROMPTS

pytestmark = pytest.mark.slow

# Measured (see docs/servers.md): the same top token on every prompt compared but near ties; largest
# |dP| 0.057 against the default packed weights (llama.cpp rounds activations to 8 bits).
MAX_DP = 0.1
NEAR_TIE = 0.03


def test_connecting_reports_llama_cpp_and_what_it_can_do(llama):
    model = RemoteModel(llama)
    s = model.info
    assert s.kind == "llama.cpp" and s.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert s.max_top_k >= 20 and s.probabilities == "raw" and not s.prompt_logprobs
    c = model.capabilities
    assert c.label == f"remote · top-{c.max_top_k} · raw" and c.kind == "llama.cpp"
    assert not c.full_vocabulary and not c.internals and c.exact_scores and c.can_score


def test_remote_top_k_agrees_with_the_local_engine(llama):
    model = RemoteModel(llama)
    local = load_model("smollm2-135m")
    compared, differ, worst = 0, [], 0.0
    for prompt in PROMPTS[:-1]:
        try:
            dist = model.predict_next_token_probabilities(prompt, top_k=20)
        except RemoteError as e:
            assert "no log-probabilities" in str(e)  # llama.cpp withholds a split character
            continue
        compared += 1
        mine = np.asarray(local.predict_next_token_probabilities(prompt).vector())
        top = dist.top()  # the 20 asked for; the distribution keeps every listed token
        assert len(top) == 20 and len(dist.tokens) == model.info.max_top_k
        assert abs(sum(t.probability for t in dist.tokens) + dist.other - 1.0) < 1e-6
        if top[0].token_id != int(mine.argmax()) and top[0].probability - top[1].probability > (
            NEAR_TIE
        ):
            differ.append(prompt[:40])
        worst = max(worst, max(abs(t.probability - mine[t.token_id]) for t in top))
    print(f"remote vs local: {compared} prompts, largest dP {worst:.4f}")
    assert compared >= len(PROMPTS) - 4
    assert not differ, differ
    assert worst < MAX_DP
    assert model.get_most_likely_token(
        model.predict_next_token_probabilities("The capital of Indonesia is")
    ) == (" Jak")


def test_generation_streams_each_token_with_its_alternatives(llama):
    model = RemoteModel(llama)
    greedy = SamplingSettings(temperature=0.0, seed=1)
    gen = model.generate("The capital of Indonesia is", max_tokens=6, sampling=greedy, top_k=20)
    steps = list(gen)
    assert "".join(s.text for s in steps).startswith(" Jakarta") and gen.text == "".join(
        s.text for s in steps
    )
    assert [s.index for s in steps] == list(range(len(steps))) and len(steps) == 6
    assert all(len(s.top_raw) == 20 and s.probability > 0 for s in steps)
    assert steps[0].top_raw[0].display == "␣Jak" and gen.stop_reason == "max_tokens"


def test_the_command_line_predicts_on_a_server(llama):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "predict", "The capital of Indonesia is",
         "-m", llama, "--top", "5", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kind"] == "llama.cpp" and out["top"][0]["text"] == " Jak"
    assert out["entropy_exact"] is False and out["label"] == "remote · top-100 · raw"
    assert len(out["top"]) == 5 and 0 < out["other"] < 1
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "predict", "The capital of Indonesia is",
         "-m", llama, "--top-k", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:4] == ["rank", "token", "prob", "sampled"]
    assert "(approximate)" not in lines[1]  # a top-3 cut of a top-100 list is exact


# ----- faults ----------------------------------------------------------------------------------


def test_a_port_with_nothing_listening(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteError, match=r"nothing answers at http://127.0.0.1:\d+ .*running"):
        RemoteModel(f"http://127.0.0.1:{port}/v1")


def test_a_generic_server_is_detected_and_read(faulty):
    faulty.mode = "ok"
    model = RemoteModel(faulty.url)
    assert model.capabilities.kind == "OpenAI-compatible"
    dist = model.predict_next_token_probabilities("x")
    assert [t.text for t in dist.top()] == [" a", " b"]
    assert dist.top()[0].token_id >= STAND_IN_BASE  # named without an id: a stand-in
    assert dist.other == pytest.approx(1 - np.exp(-0.2) - np.exp(-1.9))
    with pytest.raises(RemoteError, match="has no model 'big' \\(it serves: tiny\\)"):
        RemoteModel(faulty.url, "big")


@pytest.mark.parametrize(
    "mode, message",
    [
        ("401", "refused the request \\(401: invalid api key\\); put its API key in the "
                "environment variable TOKENSCOPE_API_KEY"),
        ("429", "is busy \\(429: too many requests\\); it asks to retry after 7 s"),
        ("500", "failed \\(500: CUDA out of memory\\)"),
        ("broken", "answered something that is not JSON"),
        ("nologprobs", "returned no log-probabilities"),
    ],
)  # fmt: skip
def test_each_fault_gets_a_clear_message(faulty, mode, message):
    faulty.mode = "ok"
    model = RemoteModel(faulty.url)
    faulty.mode = mode
    with pytest.raises(RemoteError, match=message):
        model.predict_next_token_probabilities("x")


def test_a_stream_cut_mid_way_keeps_the_tokens_that_came(faulty):
    faulty.mode = "ok"
    model = RemoteModel(faulty.url)
    faulty.mode = "cut"
    got = []
    with pytest.raises(RemoteError, match=r"after 2 tokens.*the tokens that arrived are kept"):
        for step in model.generate("x", max_tokens=10):
            got.append(step)
    assert [s.text for s in got] == [" a", " b"]
    assert got[0].probability == pytest.approx(np.exp(-0.1))


def test_the_api_key_comes_from_the_environment_only(faulty, monkeypatch):
    faulty.mode = "401"
    monkeypatch.setenv("MY_KEY", "sk-test")
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "predict", "x", "-m", faulty.url,
         "--api-key-env", "MY_KEY"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "put its API key in the environment variable MY_KEY" in proc.stderr
    assert "sk-test" not in proc.stderr + proc.stdout


def test_a_continuation_is_scored_where_the_server_echoes_the_prompt(faulty, llama):
    faulty.mode, faulty.echo = "ok", True
    try:
        model = RemoteModel(faulty.url)
        assert model.info.prompt_logprobs and model.capabilities.exact_scores
        # " is Jakarta" after "The capital": words 3 and 4 of 4, log-probs -1.0 and -1.5.
        score = model.score_continuation("The capital", " is Jakarta")
        assert score.probability == pytest.approx(np.exp(-1.0 - 1.5))
        assert score.logprobs == pytest.approx((-1.0, -1.5))
        with pytest.raises(RemoteError, match="a token spans the end of the context"):
            model.score_continuation("The capit", "al is")
    finally:
        faulty.echo = False
    faulty.mode = "ok"
    plain = RemoteModel(faulty.url)  # no echo, no /tokenize
    assert not plain.capabilities.can_score
    with pytest.raises(RemoteError, match=r"OpenAI-compatible .* cannot score a given answer"):
        plain.score_continuation("The capital of Indonesia is", " Jakarta")


def test_llama_cpp_scores_a_continuation_token_by_token_through_its_top_k(llama):
    llama = RemoteModel(llama)
    assert not llama.info.prompt_logprobs and llama.info.tokenizes
    assert llama.capabilities.can_score and llama.capabilities.exact_scores  # (its whole list)
    score = llama.score_continuation("The capital of Indonesia is", " Jakarta")
    # " Jakarta" is " Jak" + "arta" here: each read off its own top-k.
    first = llama.predict_next_token_probabilities("The capital of Indonesia is")
    second = llama.predict_next_token_probabilities("The capital of Indonesia is Jak")
    expected = first.probability_of(" Jak") * second.probability_of("arta")
    assert score.probability == pytest.approx(expected, rel=1e-6) and not score.upper_bound
    assert score.first_rank == 1 and score.top_text == " Jak" and len(score.logprobs) == 2
    # A token below the top 100: read off llama.cpp's whole distribution, exactly (it was
    # an upper bound, the last listed token's probability, 11x the true value on a sweep).
    assert llama.info.lists_all and llama.capabilities.exact_scores
    context = "The capital of Indonesia is"
    unlikely = llama.score_continuation(context, " zzzqxv")
    assert not unlikely.upper_bound and unlikely.first_rank > llama.info.max_top_k
    tokens = llama.tokenize(context + " zzzqxv", special=True)
    head = len(llama.tokenize(context, special=True))
    expected, rank = 1.0, None
    for at in range(head, len(tokens)):
        ids = [t.token_id for t in tokens[:at]]
        full = llama._completion(ids, None, max_tokens=1, temperature=0.0,
                                 logprobs=llama.info.vocab_size)  # fmt: skip
        listed = full["logprobs"]["content"][0]["top_logprobs"]
        assert len(listed) == llama.info.vocab_size
        mine = next(t for t in listed if t["id"] == tokens[at].token_id)
        expected *= float(np.exp(mine["logprob"]))
        if rank is None:
            rank = 1 + sum(t["logprob"] > mine["logprob"] for t in listed)
    assert unlikely.probability == pytest.approx(expected, rel=1e-6)
    assert unlikely.first_rank == rank


def test_a_request_waiting_on_the_server_is_cancelled_at_once(faulty):
    import time

    faulty.mode = "ok"
    model = RemoteModel(faulty.url)
    faulty.mode = "slow"
    faulty.release.clear()
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.perf_counter()
    try:
        with pytest.raises(Cancelled):
            model.predict_next_token_probabilities("x", cancel=token)
        assert time.perf_counter() - started < 10  # not the server's 30 s
    finally:
        faulty.release.set()
    faulty.mode = "ok"
    assert model.predict_next_token_probabilities("x").top()[0].text == " a"  # usable after


def test_a_timeout_says_how_long_it_waited(faulty):
    faulty.mode = "ok"
    model = RemoteModel(faulty.url, timeout=0.5)
    faulty.mode = "slow"
    faulty.release.clear()
    try:
        with pytest.raises(RemoteError, match=r"did not answer within 0\.5 s"):
            model.predict_next_token_probabilities("x")
    finally:
        faulty.release.set()


@pytest.mark.parametrize(
    "knobs, exact",
    [
        ({}, True),
        ({"temperature": 0.0}, True),
        ({"top_k": 2}, True),
        ({"top_p": 0.7}, True),
        ({"min_p": 0.5}, True),
        ({"temperature": 0.7, "top_k": 3}, True),
        ({"temperature": 0.5, "min_p": 0.3}, True),
        ({"top_k": 6}, False),
        ({"top_p": 0.97}, False),
        ({"temperature": 0.5}, False),
        ({"min_p": 0.01}, False),
        ({"repetition_penalty": 1.3}, False),
    ],
)
def test_the_after_sampling_view_of_a_top_k_is_exact_where_it_can_be(knobs, exact):
    """Against the local sampler on the whole distribution, of which the server showed 4."""
    import torch

    from tokenscope.lm.sampling import sampling_distribution

    logits = torch.tensor([3.0, 2.5, 1.0, 0.5, 0.2, 0.1, -1.0, -2.0])
    full = torch.softmax(logits, -1)
    shown = 4
    tokens = tuple(_listed(i, float(full[i])) for i in range(shown))
    dist = RemoteDistribution(tokens, float(full[shown:].sum()), "remote · top-4 · raw")
    settings = SamplingSettings(**knobs)
    view = dist.with_sampling(settings)
    assert view.sampled_exact is exact
    shares = [t.sampled_probability for t in view.tokens]
    assert sum(shares) + view.other_sampled == pytest.approx(1.0)
    assert [t.probability for t in view.tokens] == [t.probability for t in tokens]  # raw kept
    if exact:
        _, sampled = sampling_distribution(logits, settings, [])
        assert shares == pytest.approx(sampled[:shown].tolist(), abs=1e-6)
        assert view.other_sampled == pytest.approx(float(sampled[shown:].sum()), abs=1e-6)


def _listed(i: int, p: float) -> TokenProbability:
    return TokenProbability(i, f"t{i}", f"t{i}", p, p)


def test_the_largest_top_k_is_read_from_the_servers_words_not_its_address(faulty):
    faulty.mode = "max5"  # on 127.0.0.1: a number below 20 in the address too
    try:
        model = RemoteModel(faulty.url)
    finally:
        faulty.mode = "ok"
    assert model.capabilities.max_top_k == 5


def test_an_api_key_is_cleaned_or_refused_without_being_shown(faulty, monkeypatch):
    faulty.mode, faulty.key = "ok", "sk-right"
    try:
        monkeypatch.setenv("TOKENSCOPE_API_KEY", "sk-right\r\n")  # from a Windows env file
        RemoteModel(faulty.url)
        assert faulty.seen_keys[-1] == "Bearer sk-right"
        monkeypatch.setenv("TOKENSCOPE_API_KEY", "sk-\x1bbroken")
        with pytest.raises(RemoteError, match="characters a request header cannot carry") as e:
            RemoteModel(faulty.url)
        assert "broken" not in str(e.value)
    finally:
        faulty.key = None


def test_a_very_low_temperature_keeps_the_sampled_view_finite():
    tokens = tuple(_listed(i, p) for i, p in enumerate((4e-4, 3e-4, 1e-4)))
    dist = RemoteDistribution(tokens, 1 - 8e-4, "remote · top-3 · raw")
    view = dist.with_sampling(SamplingSettings(temperature=0.01, top_k=2))
    shares = [t.sampled_probability for t in view.tokens]
    assert shares[0] == pytest.approx(1.0) and view.other_sampled == 0.0
    assert sum(shares) == pytest.approx(1.0)


def test_the_command_line_sweeps_few_shot_on_a_server(llama):
    from tokenscope.lm.fewshot import load_prompt

    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "fewshot", "capitals", "--sweep", "-k", "2",
         "-m", llama, "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)["points"]
    prompt = load_prompt("capitals")
    model = RemoteModel(llama)
    for p in points:
        shot = prompt.with_shots(p["shots"])
        score = model.score_continuation(shot.assemble().text, shot.answer_text(prompt.expected))
        assert p["probability"] == pytest.approx(score.probability, rel=1e-6)
        # llama.cpp lists its whole vocabulary when asked: exact values, exact ranks.
        assert p["upper_bound"] is False and isinstance(p["rank"], int)
    # Without --sweep: the prompt's chart and its expected answer, scored as the window does.
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "fewshot", "capitals", "-m", llama, "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    text = prompt.assemble().text
    assert out["text"] == text and out["top"] and out["other"] > 0
    score = model.score_continuation(text, prompt.answer_text(prompt.expected))
    assert out["expected"]["probability"] == pytest.approx(score.probability, rel=1e-6)


def test_a_server_that_lists_only_its_top_tokens_gives_bounds_marked_as_bounds(faulty):
    """A vLLM-like server (it shows its tokens but lists its top 2 only, no echo): a score
    through its list is an upper bound with its rank unknown beyond the list, and the
    command line says so in its text and its JSON, as the window does."""

    from ...cli_run import run_cli

    faulty.mode = "topk"
    model = RemoteModel(faulty.url)
    c = model.capabilities
    assert c.kind == "vLLM" and c.can_score and not c.exact_scores
    score = model.score_continuation("The capital of France is", " Paris")
    assert score.upper_bound and score.first_rank is None and score.rank_above == 2
    assert score.probability == pytest.approx(np.exp(-1.9))  # at most the last listed one's
    out = json.loads(run_cli("fewshot", "capitals", "--sweep", "-k", "1", "-m", faulty.url,
                             "--json").stdout)  # fmt: skip
    assert out["points"] and all(
        p["upper_bound"] and p["rank"] is None and p["rank_above"] == 2 for p in out["points"]
    )
    assert "upper bounds" in out["note"]
    text = run_cli("fewshot", "capitals", "--sweep", "-k", "1", "-m", faulty.url).stdout
    rows = [line for line in text.splitlines() if line.strip().startswith(("0", "1"))]
    assert rows and all("≤" in row and "> 2" in row for row in rows), text
    preview = json.loads(run_cli("fewshot", "capitals", "-m", faulty.url, "--json").stdout)
    assert preview["expected"]["upper_bound"] and preview["upper_bound"]
    assert preview["expected"]["first_token_rank"] is None


def test_servers_running_here_are_found_on_their_ports(llama, make_model):
    import socket

    from tokenscope.lm.remote.discover import find_local_servers
    from tokenscope.serve import create_app

    from ...serve_run import running

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # nothing listens here
    llama_port = int(llama.rsplit(":", 1)[1].split("/")[0])
    with running(create_app(make_model("tiny"), name="tiny")) as root:
        ours = int(root.rsplit(":", 1)[1])
        found = find_local_servers(((free, "?"), (ours, "tokenscope"), (llama_port, "llama")))
    assert [(f.url, f.kind) for f in found] == [
        (f"http://127.0.0.1:{ours}/v1", "Tokenscope"),
        (f"http://127.0.0.1:{llama_port}/v1", "llama.cpp"),
    ]
    assert found[0].models == ("tiny",) and found[1].models[0].endswith(".gguf")
