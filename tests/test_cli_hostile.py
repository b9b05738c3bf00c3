"""The command line given hostile input: sampling knobs at and past their edges, text that is not
text, strings that would drive the terminal, numbers no probability can be. Each ends in a
correct result or one clear error line (status 2), never a traceback or status 70."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from .cli_run import run_cli as run

CLI = Path(__file__).parent.parent / "desktop" / "tokenscope" / "cli"


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokenscope: error: "), proc.stderr
    assert lines[0].isprintable(), lines[0]
    return lines[0]


def strict_json(text: str):
    """JSON as a strict parser reads it: NaN and Infinity are errors."""

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


# ----- 1. sampling extremes -------------------------------------------------------------------


@pytest.mark.parametrize("temperature", ["1e-45", "1e-308", "5e-324"])
def test_a_tiny_temperature_generates_greedily(checkpoint, temperature):
    greedy = run("generate", "The capital", "-m", checkpoint, "-n", 6, "-t", 0).stdout
    tiny = run("generate", "The capital", "-m", checkpoint, "-n", 6, "-t", temperature)
    assert tiny.stdout == greedy and "6 tokens" in tiny.stderr


@pytest.mark.parametrize(
    "knobs",
    [
        ["--repetition-penalty", "1e-300"],
        ["--repetition-penalty", "100", "-t", "1e-5"],
        ["--top-k", str(10**30)],
        ["--top-p", "1e-300", "--min-p", "1"],
    ],
)
def test_knobs_at_their_edges_generate(checkpoint, knobs):
    proc = run("generate", "The cat the cat", "-m", checkpoint, "-n", 5, "--seed", 1, *knobs,
               "--json")  # fmt: skip
    lines = [strict_json(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["tokens"] == 5
    assert all(0 <= step["probability"] <= 1 for step in lines[:-1])


@pytest.mark.parametrize(
    "knob, value",
    [
        ("--temperature", "nan"),
        ("--temperature", "inf"),
        ("--temperature", "-inf"),
        ("--temperature", "-1e-300"),
        ("--top-p", "nan"),
        ("--min-p", "inf"),
        ("--repetition-penalty", "inf"),
        ("--repetition-penalty", "nan"),
        ("--repetition-penalty", "0"),
        ("--repetition-penalty", "-2"),
    ],
)
def test_nonsense_knobs_are_one_line_naming_the_knob(checkpoint, knob, value):
    for command in ("generate", "predict"):
        # (--knob=VALUE: a value starting with "-" is otherwise read as an option)
        line = one_line_error(run(command, "x", "-m", checkpoint, f"{knob}={value}", ok=False))
        assert knob[2:].replace("-", "_") in line


# ----- 2. text that is not text ---------------------------------------------------------------


def test_a_prompt_with_bytes_that_are_not_utf8_is_one_line(checkpoint):
    # What Python makes of `tokenscope generate $'caf\xe9'` typed on a Latin-1 terminal.
    line = one_line_error(run("generate", "caf\udce9", "-m", checkpoint, ok=False))
    assert "character 4 is the byte 0xE9, which is not UTF-8" in line
    line = one_line_error(run("predict", "\ud800 x", "-m", checkpoint, ok=False))
    assert "character 1 is \\ud800" in line


def test_a_few_shot_file_with_a_lone_surrogate_is_one_line(tmp_path, checkpoint):
    bad = tmp_path / "bad.json"
    bad.write_text('{"examples": [{"input": "a\\ud800", "output": "b"}], "query": "c"}')
    line = one_line_error(run("fewshot", bad, "-m", checkpoint, ok=False))
    assert "bad.json" in line and "example 1's input is not valid text" in line


# ----- 4. strict JSON --------------------------------------------------------------------------


def test_the_json_printer_writes_strict_json_whatever_it_is_given():
    import numpy as np

    from tokenscope.cli.common import json_text

    value = {
        "nan": math.nan,
        "inf": math.inf,
        "low": -math.inf,
        "nested": [(1.5, math.nan), {"x": np.float32("inf")}],
        "numpy": np.float32(0.25),
        "name": "caf\udce9.json",  # a file name that is not UTF-8
        "fine": [1, True, None, "Jakarta"],
    }
    text = json_text(value)
    assert strict_json(text) == {
        "nan": None,
        "inf": None,
        "low": None,
        "nested": [[1.5, None], {"x": None}],
        "numpy": 0.25,
        "name": "caf\udce9.json",
        "fine": [1, True, None, "Jakarta"],
    }
    text.encode("utf-8")  # (a lone surrogate would not encode: it is written as \udce9)
    assert json_text({"a": 1.0, "b": "é"}) == '{"a": 1.0, "b": "é"}'  # the usual case: as is


def test_every_json_output_of_the_command_line_goes_through_the_strict_printer():
    for source in CLI.glob("*.py"):
        code = source.read_text(encoding="utf-8")
        if source.name != "common.py":
            assert "json.dumps" not in code, f"{source.name} writes JSON of its own"
        if '"--json"' in code or '"--progress-json"' in code:
            assert "print_json(" in code, source.name


def test_generate_and_predict_json_parse_strictly(checkpoint):
    proc = run("predict", "The", "-m", checkpoint, "-t", "1e-45", "--json")
    out = strict_json(proc.stdout)
    assert out["sampling"]["temperature"] == 1e-45
    assert sorted(t["sampled_probability"] for t in out["top"])[-1] == 1.0
    for line in run("generate", "The", "-m", checkpoint, "-n", 3, "--json").stdout.splitlines():
        strict_json(line)


# ----- 5. no probability above 1 or below 0 ---------------------------------------------------


def test_probabilities_are_shown_only_within_zero_and_one():
    from tokenscope.cli.common import BAR_WIDTH, bar
    from tokenscope.units import format_probability, probability

    assert probability(0.25) == 0.25 and probability(None) is None
    assert probability(1.00001) == 1.0 and probability(-1e-7) == 0.0  # rounding, taken back
    for impossible in (math.exp(5), 1.01, -0.5, math.nan, math.inf, -math.inf):
        assert probability(impossible) is None
        assert format_probability(impossible) == "?" and format_probability(impossible, ".3e")
        assert bar(impossible) == ""
    assert format_probability(0.5) == "0.5000" and format_probability(1e-5, ".3e") == "1.000e-05"
    assert bar(1.0) == "█" * BAR_WIDTH and bar(0.5) == "█" * (BAR_WIDTH // 2)


def _fake_session(monkeypatch, view, name="evil\x1b[2Jmodel"):
    """The CLI's session answering with `view`, as a misbehaving model or server might."""
    from tokenscope.cli import common

    info = SimpleNamespace(
        name=name, capabilities=SimpleNamespace(kind="remote", full_vocabulary=False)
    )
    monkeypatch.setattr(common.Session, "__init__", lambda self: None)
    monkeypatch.setattr(common.Session, "load", lambda self, args, target=None: info)
    monkeypatch.setattr(common.Session, "run", lambda self, job, on_record=None: view)


def _view(rows, other):
    from tokenscope.lm.tokens import TokenProbability
    from tokenscope.service.records import NextTokenView

    tokens = tuple(TokenProbability(i, text, text, p, p) for i, (text, p) in enumerate(rows))
    return NextTokenView(tokens, 1.0, 0.0, (1, 2), other=other, label="top-3 \x1b[2J")


def test_predict_never_prints_an_impossible_probability(monkeypatch):
    rows = [("a", math.exp(5)), ("b", -0.25), ("c", math.nan), ("d", 0.125)]
    _fake_session(monkeypatch, _view(rows, other=7.0))
    out = run("predict", "x", "-m", "http://127.0.0.1:9/v1", "--top", 4).stdout
    numbers = [float(n) for n in re.findall(r"\d+\.\d+", out.split("\n", 1)[1])]
    assert numbers == [0.125]  # the one real probability; the rest are "?"
    assert out.count(" ? ") == 4  # three tokens and "other"
    assert "nan" not in out and "148" not in out

    shown = strict_json(run("predict", "x", "-m", "http://127.0.0.1:9/v1", "--json").stdout)
    assert [t["probability"] for t in shown["top"]] == [None, None, None, 0.125]
    assert shown["other"] is None


# ----- 6. nothing from outside drives the terminal --------------------------------------------


def test_names_tokens_and_labels_from_a_server_are_printed_escaped(monkeypatch):
    _fake_session(monkeypatch, _view([("\x1b[2J", 0.5), ("\u202eevil", 0.25)], other=0.25))
    out = run("predict", "x", "-m", "http://127.0.0.1:9/v1").stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert "evil\\x1b[2Jmodel" in out and "top-3 \\x1b[2J" in out
    assert "\\x1b[2J" in out.splitlines()[2] and "\\u202eevil" in out.splitlines()[3]


def test_a_few_shot_file_cannot_paint_the_terminal(tmp_path, checkpoint):
    evil = tmp_path / "evil.json"
    evil.write_text(
        json.dumps(
            {
                "name": "clear\x1b[2J\x1b]0;title\x07",
                "instruction": "Translate.\x1b[2J\nThen\ttab.",
                "examples": [{"input": "a\x1b[31m", "output": "b"}],
                "query": "c",
                "expected": "d",
            }
        )
    )
    out = run("fewshot", evil, "-m", checkpoint).stdout
    assert "\x1b" not in out and "\x07" not in out
    assert out.startswith("clear\\x1b[2J\\x1b]0;title\\x07: 1-shot")
    assert "Translate.\\x1b[2J\nThen\ttab." in out  # the text's own lines and tabs are kept
    sweep = run("fewshot", evil, "-m", checkpoint, "--sweep").stdout
    assert "\x1b" not in sweep and "clear\\x1b[2J" in sweep


def test_generated_text_keeps_its_lines_but_not_escape_sequences(monkeypatch):
    from tokenscope.lm.tokens import GenerationStep
    from tokenscope.service.records import GenerationDone

    def steps(self, job, on_record=None):
        for i, text in enumerate(["line\n", "\x1b[2J", "\tend\x9b"]):
            on_record(GenerationStep(i, 1, text, text, 0.5, 0.5, (), (), 1.0, 0.0))
        return GenerationDone("max_tokens", 3, 0.1, "", "\x1b]0;t\x07\n")

    _fake_session(monkeypatch, None)
    from tokenscope.cli import common

    monkeypatch.setattr(common.Session, "run", steps)
    out = run("generate", "x", "-m", "http://127.0.0.1:9/v1").stdout
    assert out == "line\n\\x1b[2J\tend\\x9b\\x1b]0;t\\x07\n\n"


def test_an_error_message_is_one_line_whatever_it_holds(monkeypatch):
    from tokenscope.cli import common
    from tokenscope.lm.errors import TokenscopeError

    def refuse(self, args, target=None):
        raise TokenscopeError('the server said: {"error": "\x1b[2J\x1b[31mboom\nsecond line"}')

    monkeypatch.setattr(common.Session, "__init__", lambda self: None)
    monkeypatch.setattr(common.Session, "load", refuse)
    line = one_line_error(run("predict", "x", "-m", "http://127.0.0.1:9/v1", ok=False))
    assert "\\x1b[2J\\x1b[31mboom\\x0asecond line" in line
