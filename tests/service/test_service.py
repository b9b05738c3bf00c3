"""The model service without Qt: typed jobs, cancellation, model epochs, display-ready records."""

from __future__ import annotations

import pytest

import tokenscope
from tokenscope.lm import GREEDY, SamplingSettings
from tokenscope.lm.fewshot import load_prompt
from tokenscope.lm.tokens import GenerationStep
from tokenscope.service import (
    CompileStatus,
    FewShotPreview,
    Generate,
    Load,
    Predict,
    Surprisal,
    Sweep,
    Tokenize,
)
from tokenscope.service.records import (
    GenerationDone,
    GenerationStarted,
    ModelInfo,
    NextTokenView,
    Progress,
    SweepSeries,
)


def test_load_reports_stages_and_makes_a_new_epoch(harness, checkpoint, tiny_model):
    ticket = harness.submit(Load(str(checkpoint)))
    done = harness.finished(ticket)
    assert done.outcome == "completed"
    info = done.payload
    assert isinstance(info, ModelInfo)
    assert info.epoch == done.epoch == harness.service.epoch == 1
    assert info.parameters == tiny_model.parameter_count
    assert info.threads >= 1
    stages = [r.label for r in harness.yielded(ticket) if isinstance(r, Progress)]
    assert stages[0] == "importing PyTorch"
    assert "building the tokenizer" in stages and "placing the weights" in stages
    assert harness.load(checkpoint).epoch == 2  # loading again is a new epoch


def test_prediction_rows_are_the_engines_distribution(harness, checkpoint):
    harness.load(checkpoint)
    text = "The capital of Indonesia is"
    view = harness.finished(harness.submit(Predict(text, top_k=5))).payload
    assert isinstance(view, NextTokenView)
    dist = tokenscope.load_model(str(checkpoint)).predict_next_token_probabilities(text)
    assert [r.token_id for r in view.rows] == [t.token_id for t in dist.top(5)]
    assert [r.probability for r in view.rows] == pytest.approx([t.probability for t in dist.top(5)])
    assert [r.display for r in view.rows] == [t.display for t in dist.top(5)]
    assert [r.text for r in view.rows] == [t.text for t in dist.top(5)]
    assert view.other is None and view.label == "full vocabulary"  # the whole vocabulary
    assert view.entropy_bits == pytest.approx(dist.entropy, rel=1e-5)
    assert view.recomputed and view.removed_mass == 0


def test_other_knobs_on_the_same_text_reuse_the_logits(harness, checkpoint, monkeypatch):
    harness.load(checkpoint)
    first = harness.finished(harness.submit(Predict("Once upon"))).payload
    model = harness.service.model
    calls = []
    forward = model.transformer.forward
    monkeypatch.setattr(
        model.transformer, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k)
    )
    sharp = SamplingSettings(temperature=0.3, top_k=2)
    second = harness.finished(harness.submit(Predict("Once upon", sampling=sharp))).payload
    assert not second.recomputed and calls == []  # the model did not run
    assert [r.probability for r in second.rows] == [r.probability for r in first.rows]
    assert sum(r.sampled_probability > 0 for r in second.rows) == 2
    assert second.rows[0].sampled_probability > first.rows[0].sampled_probability
    kept = first.rows[0].probability + first.rows[1].probability
    assert second.removed_mass == pytest.approx(1 - kept, abs=1e-5)


def test_watch_probability_uses_the_one_scoring_routine(harness, checkpoint):
    harness.load(checkpoint)
    view = harness.finished(
        harness.submit(Predict("The capital of", watch=" Indonesia is"))
    ).payload
    model = tokenscope.load_model(str(checkpoint))
    expected = model.score_continuation("The capital of", " Indonesia is").probability
    assert view.watch_probability == pytest.approx(expected, rel=1e-5)


def test_tokenize_and_score(harness, checkpoint):
    harness.load(checkpoint)
    tokens = harness.finished(harness.submit(Tokenize("Hello, 世界"))).payload
    assert "".join("Hello, 世界"[t.start : t.end] for t in tokens if t.start < t.end)
    view = harness.finished(harness.submit(Surprisal("The cat sat."))).payload
    assert view.results[0].perplexity > 1


def test_generation_streams_steps_then_a_summary(harness, checkpoint):
    harness.load(checkpoint)
    ticket = harness.submit(Generate("Once", max_tokens=6, sampling=SamplingSettings(seed=3)))
    done = harness.finished(ticket)
    records = harness.yielded(ticket)
    assert isinstance(records[0], GenerationStarted)
    steps = records[1:]
    assert all(isinstance(s, GenerationStep) for s in steps)
    assert isinstance(done.payload, GenerationDone) and done.payload.tokens == len(steps)
    assert len(steps) == 6 or steps[-1].is_eos
    again = harness.submit(Generate("Once", max_tokens=6, sampling=SamplingSettings(seed=3)))
    harness.finished(again)
    assert [s.token_id for s in harness.yielded(again)[1:]] == [s.token_id for s in steps]


def test_cancelling_a_generation_stops_it_within_a_token(harness, endless_checkpoint):
    harness.load(endless_checkpoint)
    ticket = harness.submit(Generate("The", max_tokens=100_000))
    counted = []

    def cancel_after_three(event):
        if event.ticket == ticket.id and event.kind == "yielded":
            counted.append(event)
            if len(counted) == 4:  # GenerationStarted and three tokens
                ticket.cancel()

    harness.listeners.append(cancel_after_three)
    done = harness.finished(ticket)
    assert done.outcome == "cancelled"
    assert len(harness.yielded(ticket)) <= 5  # at most one more token after the cancel


def test_a_prediction_runs_between_the_tokens_of_a_long_generation(harness, endless_checkpoint):
    harness.load(endless_checkpoint)
    generation = harness.submit(Generate("The", max_tokens=100_000))
    harness.wait_until(lambda: len(harness.yielded(generation)) > 2)
    predicted = harness.finished(harness.submit(Predict("Hello")))
    assert predicted.outcome == "completed"
    assert not harness.of(generation, "finished")  # still generating
    generation.cancel()
    assert harness.finished(generation).outcome == "cancelled"


def test_work_asked_of_an_older_model_is_dropped(harness, checkpoint, endless_checkpoint):
    harness.load(endless_checkpoint)
    generation = harness.submit(Generate("The", max_tokens=100_000))
    harness.wait_until(lambda: len(harness.yielded(generation)) > 2)
    harness.load(checkpoint)  # a new epoch while generating
    assert harness.finished(generation).outcome == "stale"
    old = harness.submit(Predict("The"), epoch=1)
    assert harness.finished(old).outcome == "stale"
    new = harness.submit(Predict("The"))
    assert harness.finished(new).outcome == "completed", harness.of(new)


def test_a_cancelled_load_keeps_the_current_model(harness, checkpoint, tmp_path, make_model):
    info = harness.load(checkpoint)
    bigger = make_model("tiny", n_layer=6).save(tmp_path / "bigger")
    ticket = harness.submit(Load(str(bigger)))

    def cancel_while_converting(event):
        payload = event.payload
        if isinstance(payload, Progress) and payload.label == "building the tokenizer":
            ticket.cancel()

    harness.listeners.append(cancel_while_converting)
    assert harness.finished(ticket).outcome == "cancelled"
    assert harness.service.epoch == info.epoch
    assert harness.service.info.source == info.source
    assert harness.finished(harness.submit(Predict("The"))).outcome == "completed"


def test_a_broken_model_is_an_error_and_the_current_model_stays(harness, checkpoint, tmp_path):
    harness.load(checkpoint)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((checkpoint / name).read_bytes())
    (broken / "model.safetensors").write_bytes(
        (checkpoint / "model.safetensors").read_bytes()[:100]
    )
    ticket = harness.submit(Load(str(broken)))
    assert harness.finished(ticket).outcome == "failed"
    [error] = harness.of(ticket, "errored")
    assert "model.safetensors" in error.payload and "Traceback" not in error.payload
    assert harness.service.epoch == 1


def test_a_job_before_any_model_says_so(harness):
    ticket = harness.submit(Predict("The"))
    assert harness.finished(ticket).outcome == "failed"
    assert harness.of(ticket, "errored")[0].payload == "no model is loaded yet"


def test_a_sweep_reports_each_point_and_each_model(harness, checkpoint, other_checkpoint):
    harness.load(checkpoint)
    other = other_checkpoint
    prompt = load_prompt("english-indonesian")
    ticket = harness.submit(Sweep(prompt, max_shots=2, others=(str(other),)))
    assert harness.finished(ticket).outcome == "completed"
    records = harness.yielded(ticket)
    series = [r for r in records if isinstance(r, SweepSeries)]
    assert [len(s.points) for s in series] == [3, 3]
    assert [r.done for r in records if isinstance(r, Progress) and r.total] == [1, 2, 3] * 2
    assert [p.probability for p in series[0].points] != [p.probability for p in series[1].points]


def test_a_sweep_with_settings_it_cannot_run_names_them(harness, checkpoint):
    harness.load(checkpoint)
    prompt = load_prompt("capitals")
    ticket = harness.submit(Sweep(prompt, max_shots=len(prompt.examples) + 1))
    harness.finished(ticket)
    [error] = harness.of(ticket, "errored")
    assert error.payload == f"max_shots must be between 0 and {len(prompt.examples)} (got 8)"


def test_a_sweep_stops_between_points_when_cancelled(harness, checkpoint):
    harness.load(checkpoint)
    ticket = harness.submit(Sweep(load_prompt("english-indonesian"), orders=20))

    def cancel_at_two(event):
        if isinstance(event.payload, Progress) and event.payload.done == 2:
            ticket.cancel()

    harness.listeners.append(cancel_at_two)
    assert harness.finished(ticket).outcome == "cancelled"
    done = [r.done for r in harness.yielded(ticket) if isinstance(r, Progress)]
    assert max(done) == 2


def test_a_fewshot_preview_is_ready_to_show(harness, checkpoint):
    harness.load(checkpoint)
    view = harness.finished(
        harness.submit(FewShotPreview(load_prompt("english-indonesian")))
    ).payload
    assert view.text.endswith("cloud =>")
    assert view.expected.continuation == " awan"
    assert view.chart.rows and view.chart.rows[0].probability == max(
        r.probability for r in view.chart.rows
    )
    assert view.token_count == len(view.chart.context_ids) + view.chart.dropped_tokens


def test_shutdown_cancels_a_running_generation(harness, endless_checkpoint):
    harness.load(endless_checkpoint)
    generation = harness.submit(Generate("The", max_tokens=100_000))
    queued = harness.submit(Sweep(load_prompt("capitals")))
    harness.wait_until(lambda: len(harness.yielded(generation)) > 2)
    harness.close()
    assert harness.of(generation, "finished")[0].outcome == "cancelled"
    assert harness.of(queued, "finished")[0].outcome == "cancelled"
    with pytest.raises(RuntimeError, match="shut down"):
        harness.submit(Predict("The"))


def _status(harness) -> ModelInfo:
    done = harness.finished(harness.submit(CompileStatus()))
    assert done.outcome == "completed"
    return done.payload


def _greedy(harness) -> list[int]:
    ticket = harness.submit(Generate("The capital of", max_tokens=6, sampling=GREEDY))
    assert harness.finished(ticket, 120).outcome == "completed"
    return [s.token_id for s in harness.yielded(ticket) if isinstance(s, GenerationStep)]


@pytest.mark.slow
def test_a_load_compiles_the_decode_step_in_the_background(harness, checkpoint, monkeypatch):
    from tokenscope.lm import background_compile

    monkeypatch.setattr(background_compile, "WORTH_COMPILING", 0)  # the tiny model too
    monkeypatch.delenv("TOKENSCOPE_COMPILE")
    done = harness.finished(harness.submit(Load(str(checkpoint), compile=True)))
    assert done.outcome == "completed"
    assert done.payload.compiling and not done.payload.compiled and not done.payload.note
    eager = _greedy(harness)  # the eager model answers while the step is built
    assert harness.service._compiling.wait(600) == "ready"
    info = _status(harness)
    assert info.compiled and not info.compiling and not info.note
    assert harness.service.model.internals()._decoder is not None
    assert _greedy(harness) == eager  # the compiled step decodes the same tokens


@pytest.mark.slow
def test_a_compile_that_fails_leaves_the_model_eager_and_says_why(
    harness, checkpoint, monkeypatch, tmp_path
):
    from tokenscope.lm import background_compile

    monkeypatch.setattr(background_compile, "WORTH_COMPILING", 0)
    monkeypatch.delenv("TOKENSCOPE_COMPILE")
    # A compiler that is not there, and a cache with nothing in it: the first compile's
    # process fails, and the reason comes back.
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    harness.finished(harness.submit(Load(str(checkpoint), compile=True)))
    assert harness.service._compiling.wait(600) == "failed"
    info = _status(harness)
    assert not info.compiled and not info.compiling
    assert info.note.startswith("compiled decoding unavailable (")
    assert len(_greedy(harness)) == 6


@pytest.mark.slow
def test_loading_another_model_stops_the_first_ones_compile(
    harness, checkpoint, endless_checkpoint, monkeypatch, tmp_path
):
    from tokenscope.lm import background_compile

    monkeypatch.setattr(background_compile, "WORTH_COMPILING", 0)
    monkeypatch.delenv("TOKENSCOPE_COMPILE")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # a long compile
    harness.finished(harness.submit(Load(str(checkpoint), compile=True)))
    first = harness.service._compiling
    harness.finished(harness.submit(Load(str(endless_checkpoint))))
    assert first.wait(600) == "cancelled"
    assert first._process is None or first._process.poll() is not None  # no compile left
    assert harness.service._compiling is None and not _status(harness).compiling


def test_small_models_are_not_compiled(harness, checkpoint, monkeypatch):
    monkeypatch.delenv("TOKENSCOPE_COMPILE")
    done = harness.finished(harness.submit(Load(str(checkpoint), compile=True)))
    assert not done.payload.compiling and not done.payload.compiled and not done.payload.note


def test_a_cancel_callback_that_fails_leaves_the_others_called():
    from tokenscope.service.cancel import CancelToken

    token, called = CancelToken(), []

    def broken() -> None:
        raise RuntimeError("boom")

    with token.calling(broken), token.calling(lambda: called.append("second")):
        token.cancel()
    assert called == ["second"] and token.cancelled
    with token.calling(lambda: called.append("late")):  # already cancelled: called at once
        pass
    assert called == ["second", "late"]
