"""Every training config field is checked for type and range before anything runs; the run
refuses what the machine cannot hold before allocating it; failures before the first step
end in an error event."""

import io
import json
import re
from pathlib import Path

import pytest
import torch

from tokenscope.lm.config import preset
from tokenscope.train.cli import main
from tokenscope.train.config import TrainConfig
from tokenscope.train.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    StepEvent,
    WarningEvent,
    parse_event,
)
from tokenscope.train.loop import Trainer
from tokenscope.train.memory import NotEnoughMemory, check_fits, training_bytes

# (field, bad value, words the message must hold: the field and the allowed range)
BAD_FIELDS = [
    ("grad_accum", 0, "grad_accum must be a whole number in [1, 65536] (got 0)"),
    ("log_every", 0, "log_every must be a whole number in [1, "),
    ("eval_every", 0, "eval_every must be a whole number in [1, "),
    ("checkpoint_every", 0, "checkpoint_every must be a whole number in [1, "),
    ("sample_every", 0, "sample_every must be a whole number in [1, "),
    ("eval_batches", 0, "eval_batches must be a whole number in [1, "),
    ("steps", "100", "steps must be a whole number in [1, 1000000000] (got '100')"),
    ("steps", True, "steps must be a whole number"),
    ("batch_size", 10**7, "batch_size must be a whole number in [1, 65536] (got 10000000)"),
    ("batch_size", 8.0, "batch_size must be a whole number"),
    ("vocab_size", 10**9, "vocab_size must be a whole number in [2, 1048576]"),
    ("learning_rate", "fast", "learning_rate must be a number in (0, inf) (got 'fast')"),
    ("learning_rate", -1, "learning_rate must be a number in (0, inf)"),
    ("min_learning_rate", None, "min_learning_rate must be a number in [0, inf)"),
    ("beta2", 1.0, "beta2 must be a number in [0, 1) (got 1.0)"),
    ("dropout", 1.5, "dropout must be a number in [0, 1)"),
    ("grad_clip", 0, "grad_clip must be a number in (0, inf)"),
    ("val_fraction", 0.5, "val_fraction must be a number in (0, 0.5)"),
    ("warmup_steps", -1, "warmup_steps must be a whole number in [0, "),
    ("threads", -1, "threads must be a whole number in [1, 1024] or null (got -1)"),
    ("threads", 0, "threads must be a whole number in [1, 1024] or null (got 0)"),
    ("seed", -5, "seed must be a whole number in [0, 4294967295]"),
    ("context", 0, "context must be a whole number in [1, "),
    ("sample_tokens", 10**6, "sample_tokens must be a whole number in [1, 4096]"),
    ("keep_checkpoints", "two", "keep_checkpoints must be a whole number"),
    ("max_bad_steps", 0, "max_bad_steps must be a whole number in [1, "),
    ("device", "gpu", "device must be one of auto, cpu, mps, cuda or cuda:N (got 'gpu')"),
    ("device", 0, "device must be one of"),
    ("precision", "fp8", "precision must be one of 'auto', 'fp32', 'bf16', 'fp16'"),
    ("strategy", "zero3", "strategy must be one of 'ddp', 'fsdp' (got 'zero3')"),
    ("strategy", None, "strategy must be one of 'ddp', 'fsdp' (got None)"),
    ("tokenizer", "words", "tokenizer must be one of 'char', 'bpe', 'model'"),
    ("preset", "huge", "preset must be one of "),
    ("corpus_recipe", "mine", "corpus_recipe must be one of 'default'"),
    ("name", "", "name must be a non-empty text"),
    ("out_dir", 7, "out_dir must be a non-empty text"),
    ("data", [1, 2], "data must be a list of file or folder paths"),
    ("sample_prompts", "The", "sample_prompts must be a list of texts"),
    ("sample_prompts", [None], "sample_prompts[0] must be a text"),
    ("probes", [{"prompt": "a"}], "probes[0] must be an object with exactly prompt and"),
    ("probes", [{"prompt": "a", "continuation": ""}], "probes[0].continuation must be a non"),
    ("probes", {"prompt": "a"}, "probes must be a list of {prompt, continuation} objects"),
    ("model", [], "model must be an object of model settings"),
    ("model", {"n_head": 0}, "model.n_head must be a whole number in [1, 1024] (got 0)"),
    ("model", {"n_layer": 10**6}, "model.n_layer must be a whole number in [1, 1024]"),
    ("model", {"d_model": "wide"}, "model.d_model must be a whole number"),
    ("model", {"n_kv_head": 0}, "model.n_kv_head must be a whole number in [1, 1024] or null"),
    ("model", {"norm_eps": 0}, "model.norm_eps must be a number in (0, 1]"),
    ("model", {"qkv_bias": "yes"}, "model.qkv_bias must be true or false"),
    ("model", {"position": "alibi"}, "model.position must be one of 'learned', 'rope'"),
    ("model", {"rope_scaling": {"factor": 8}}, "model.rope_scaling must be null or an object"),
    ("model", {"vocab_size": 100}, "model.vocab_size is set by the tokenizer"),
    ("model", {"heads": 4}, "model has no setting 'heads' (known: context_length"),
    ("model", {"n_head": 3}, "model: d_model 256 is not divisible by n_head 3"),
]


def _config(**fields) -> dict:
    return {"data": ["corpus"], "out_dir": "run", "preset": "small", **fields}


@pytest.mark.parametrize(("field", "value", "expected"), BAD_FIELDS)
def test_each_bad_field_is_refused_with_its_name_and_range(field, value, expected):
    with pytest.raises(ValueError, match="invalid training config") as raised:
        TrainConfig.from_dict(_config(**{field: value}))
    assert expected in str(raised.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as raised:
        TrainConfig.from_dict(_config(steps=0, batch_size="8", device="gpu", threads=-1))
    message = str(raised.value)
    for field in ("steps", "batch_size", "device", "threads"):
        assert f"{field} must be" in message


def test_good_values_pass_and_lists_become_tuples():
    config = TrainConfig.from_dict(
        _config(
            threads=None,
            context=None,
            device="cuda:1",
            model={"n_kv_head": None, "d_ff": None},
            strategy="fsdp",
        )
    )
    assert config.device == "cuda:1" and config.strategy == "fsdp"
    assert TrainConfig.from_dict(_config()).strategy == "ddp"
    direct = TrainConfig(data=["a"], out_dir="o", sample_prompts=["x"])
    assert direct.data == ("a",) and direct.sample_prompts == ("x",)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("[1, 2]", "must be a JSON object (got list)"),
        ('"a text"', "must be a JSON object (got str)"),
        ('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("{}", "out_dir is missing"),
        ('{"out_dir": "o"}', "data: name at least one file or folder"),
    ],
)
def test_config_files_of_the_wrong_shape_are_refused(tmp_path, document, expected):
    path = tmp_path / "run.json"
    path.write_text(document)
    with pytest.raises(ValueError, match=re.escape(expected)):
        TrainConfig.from_file(path)


def test_a_folder_given_as_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot read the training config"):
        TrainConfig.from_file(tmp_path)


def _events(text: str) -> list[Event]:
    return [e for line in text.splitlines() if (e := parse_event(line))]


@pytest.mark.parametrize(
    ("change", "field"),
    [("grad_accum=0", "grad_accum"), ('batch_size="8"', "batch_size"), ("threads=-1", "threads"),
     ('model={"n_layer": 1000000}', "model.n_layer"), ('device="gpu"', "device"),
     ("vocab_size=1000000000", "vocab_size"), ("stepz=3", "stepz")],
)  # fmt: skip
def test_the_command_line_reports_a_bad_field_as_an_error_event(tmp_path, capsys, change, field):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_config()))
    code = main(["--config", str(path), "--set", change])
    out, err = capsys.readouterr()
    assert code == 2
    events = _events(out)
    assert [type(e) for e in events] == [ErrorEvent, DoneEvent]
    assert field in events[0].message and events[1].status == "failed"
    assert err.count("\n") == 1 and field in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_measuring_refuses_a_bad_field_without_an_event_on_stdout(tmp_path, capsys):
    """The window's measurement reads stdout as one measure line: errors go to stderr."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_config(grad_accum=0)))
    assert main(["--config", str(path), "--measure-steps", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "grad_accum must be a whole number" in err


# ----- memory --------------------------------------------------------------------------------


def test_the_memory_estimate_grows_with_model_and_batch():
    small = preset("tiny", vocab_size=300)
    base = training_bytes(small, 8, 32)["total"]
    assert training_bytes(small, 16, 32)["total"] > base
    assert training_bytes(small.replace(n_layer=8), 8, 32)["total"] > base
    assert training_bytes(small, 8, 32)["state"] == 16 * small.parameter_count()


def test_a_model_that_cannot_fit_is_refused_before_allocating():
    huge = preset("small", vocab_size=50_000, n_layer=1024, d_model=8192, n_head=64)
    with pytest.raises(NotEnoughMemory, match=r"need about .* GB, but cpu has .* available"):
        check_fits(huge, 64, 256, torch.device("cpu"))
    with pytest.raises(NotEnoughMemory, match="batch_size"):
        check_fits(preset("tiny", vocab_size=300), 60_000, 1_000_000, torch.device("cpu"))
    check_fits(preset("tiny", vocab_size=300), 8, 32, torch.device("cpu"))  # fits


# ----- failures before the first step --------------------------------------------------------


def _run_in_process(tmp_path, capsys, **fields) -> tuple[str, list[Event]]:
    """Trainer.run() here: these configs fail before anything is trained."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "a.txt").write_text("The capital of Peru is Lima.\n" * 200)
    base = {"data": [str(corpus)], "out_dir": str(tmp_path / "run"), "preset": "tiny",
            "vocab_size": 300, "steps": 2}  # fmt: skip
    config = TrainConfig.from_dict({**base, **fields})
    status = Trainer(config).run()
    return status, _events(capsys.readouterr().out)


def test_a_device_this_machine_lacks_is_an_error_event(tmp_path, capsys):
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    status, events = _run_in_process(tmp_path, capsys, device=device)
    assert status == "failed" and [type(e) for e in events] == [ErrorEvent, DoneEvent]
    assert f'device "{device}" is not available' in events[0].message
    assert not (tmp_path / "run").exists()


def test_a_model_too_big_for_this_machine_is_an_error_event(tmp_path, capsys):
    status, events = _run_in_process(
        tmp_path, capsys, model={"n_layer": 1024, "d_model": 16384, "n_head": 128}
    )
    assert status == "failed" and isinstance(events[-1], DoneEvent)
    error = next(e for e in events if isinstance(e, ErrorEvent)).message
    assert "need about" in error and "available" in error
    assert not list((tmp_path / "run").glob("checkpoints/*"))


def test_event_writing_that_breaks_does_not_break_the_run(tmp_path):
    """A window that went away (a closed pipe) or a full disk under events.jsonl: the
    writer keeps going with what still works and says what stopped working."""
    from tokenscope.train.events import EventWriter

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    writer = EventWriter(tmp_path / "events.jsonl", stream=Closed())
    writer.emit(StepEvent(step=1))
    writer.emit(StepEvent(step=2))
    writer.close()
    assert [e.step for e in _events((tmp_path / "events.jsonl").read_text())] == [1, 2]

    stream = io.StringIO()
    full = EventWriter(Path("/dev/full"), stream=stream)  # every write: ENOSPC
    full.emit(StepEvent(step=1))
    full.emit(StepEvent(step=2))
    full.close()
    events = _events(stream.getvalue())
    assert [type(e) for e in events] == [StepEvent, WarningEvent, StepEvent]
    assert "No space left on device" in events[1].message
