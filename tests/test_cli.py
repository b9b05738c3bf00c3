"""The command line as a person runs it: its commands in this process (`cli.main`), and a
real `python -m tokenscope` where the process itself is the point."""

import json
import subprocess
import sys

import pytest

from .cli_run import run_cli as run


def run_process(*args, ok=True):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_predict_json_matches_the_engine(checkpoint, tiny_model):
    # The one command run as its own process: the entry point, stdout and the exit status.
    proc = run_process(
        "predict", "The capital of Indonesia is", "--model", checkpoint, "--top", 5, "--json"
    )
    out = json.loads(proc.stdout)
    dist = tiny_model.predict_next_token_probabilities("The capital of Indonesia is")
    assert [t["token_id"] for t in out["top"]] == [t.token_id for t in dist.top(5)]
    assert [t["probability"] for t in out["top"]] == pytest.approx([p for _, p in dist][:5])
    assert out["entropy_bits"] == pytest.approx(dist.entropy)
    assert out["sampling"] is None


def test_predict_prints_bars_and_the_sampled_column(checkpoint):
    proc = run("predict", "The", "--model", checkpoint, "--top", 3, "--top-k", 2)
    lines = proc.stdout.splitlines()
    assert "entropy" in lines[0]
    assert "sampled" in lines[1]
    rows = lines[2:]
    assert len(rows) == 3
    assert rows[0].split()[0] == "1"
    sampled = [float(r.split()[3]) for r in rows]
    assert sampled[2] == 0.0 and sum(sampled) == pytest.approx(1.0, abs=1e-3)


def test_generate_streams_json_lines_and_is_reproducible(checkpoint):
    args = ("generate", "The", "--model", checkpoint, "-n", 6, "--seed", 4, "--json")
    first = run(*args).stdout.splitlines()
    second = run(*args).stdout.splitlines()
    steps = [json.loads(line) for line in first[:-1]]
    summary = json.loads(first[-1])
    assert len(steps) == 6 and [s["index"] for s in steps] == list(range(6))
    assert summary["stop_reason"] == "max_tokens" and summary["tokens"] == 6
    strip = lambda lines: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if k not in ("elapsed_s", "tokens_per_second")}
        for x in lines
    ]
    assert strip(first) == strip(second)


def test_generate_greedy_text_matches_the_engine(checkpoint, tiny_model):
    from tokenscope.lm import GREEDY

    proc = run("generate", "The capital", "--model", checkpoint, "-n", 8, "-t", 0)
    expected = tiny_model.generate("The capital", max_tokens=8, sampling=GREEDY)
    list(expected)
    assert proc.stdout == expected.text + "\n"
    assert "8 tokens" in proc.stderr and "stopped: max_tokens" in proc.stderr


def test_help_lists_every_command():
    out = run("--help").stdout
    for command in ("predict", "generate", "train", "export", "models"):
        assert command in out


def test_bad_model_and_bad_settings_give_clear_errors(tmp_path, checkpoint):
    proc = run("predict", "x", "--model", tmp_path / "missing", ok=False)
    assert proc.returncode == 2
    assert "tokenscope: error: no model named" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run("generate", "x", "--model", checkpoint, "--top-p", 0, ok=False)
    assert proc.returncode == 2 and "top_p must be (0, 1]" in proc.stderr


def _one_line_error(proc, status=2):
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokenscope: error: "), proc.stderr
    return lines[0]


def _bad_models(tmp_path, checkpoint):
    """Model arguments a person could give by mistake or an attacker on purpose."""
    import os
    import shutil

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    cut = tmp_path / "cut"
    shutil.copytree(checkpoint, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"model_type": "teapot", "vocab_size": 7}')
    return {
        "a FIFO": fifo,
        "/dev/null": "/dev/null",
        "random bytes": binary,
        "cut weights": cut,
        "a foreign config": foreign,
        "an over-long name": tmp_path / ("x" * 300),
    }


@pytest.mark.slow
def test_every_bad_model_gives_one_line_and_status_2(tmp_path, checkpoint):
    for what, model in _bad_models(tmp_path, checkpoint).items():
        proc = subprocess.run(
            [sys.executable, "-m", "tokenscope", "predict", "x", "--model", str(model)],
            capture_output=True,
            text=True,
            timeout=60,  # a FIFO must not be opened and waited on
        )
        line = _one_line_error(proc)
        assert len(line) < 400, (what, line)


@pytest.mark.parametrize(
    "args, words",
    [
        (["predict", "x", "--top", "-3"], "top_k"),
        (["generate", "x", "--max-tokens", "-1"], "max_tokens"),
        (["generate", "x", "--temperature", "nan"], "temperature"),
        (["generate", "x", "--seed", "-5"], "seed"),
    ],
)
def test_bad_settings_give_one_line_naming_the_setting(checkpoint, args, words):
    line = _one_line_error(run(*args, "--model", checkpoint, ok=False))
    assert words in line


def test_an_unwritable_destination_is_one_line(tmp_path, checkpoint):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _one_line_error(run("export", checkpoint, blocker / "out", ok=False))
    assert "a-file" in line


def test_debug_adds_the_traceback_anywhere_on_the_line(tmp_path):
    proc = run("predict", "--debug", "x", "--model", tmp_path / "missing", ok=False)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "tokenscope: error: no model named" in proc.stderr


def test_a_bug_prints_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    from tokenscope import cli

    def broken(args):
        raise KeyError("a bug")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith(" doctor"):
            action.set_defaults(handler=broken)
    assert cli.main(["doctor"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "please report it" in err.lower()


def test_version():
    import tokenscope

    assert run_process("--version").stdout.strip() == f"tokenscope {tokenscope.__version__}"


def test_stop_strings_understand_backslash_escapes(checkpoint):
    from tokenscope.escapes import escape, unescape

    assert unescape(r"\n\n") == "\n\n" and unescape(r"a\tb\\c\d") == "a\tb\\c\\d"
    assert unescape(escape("x\n\t\\y")) == "x\n\t\\y"
    proc = run("generate", "The", "-m", checkpoint, "--max-tokens", "40", "--seed", "3",
               "--stop", r"\n", "--json")  # fmt: skip
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert "\n" not in summary["text"]
    if summary["stop_reason"] == "stop_string":
        assert summary["tokens"] < 40


def test_threads_and_presets_on_the_command_line(checkpoint):
    out = run("fewshot", "--help").stdout
    assert "presets: capitals, english-indonesian, invented-language, sentiment" in out
    assert "order 0 keeps the examples as given" in " ".join(out.split())
    proc = run("predict", "The", "-m", checkpoint, "--threads", "2", "--json")
    assert json.loads(proc.stdout)["top"]
    bad = run("predict", "The", "-m", checkpoint, "--threads", "0", ok=False)
    assert bad.returncode == 2 and "threads must be a whole number from 1" in bad.stderr


def test_the_window_without_a_display_says_what_is_missing(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    env["TOKENSCOPE_HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tokenscope"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert "no display" in proc.stderr and "xvfb-run" in proc.stderr
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr


def test_missing_x11_libraries_are_named_with_their_packages():
    from tokenscope.doctor import display_problem

    env = {"DISPLAY": ":0"}
    present = {"xcb-cursor", "xcb-icccm", "xcb-image", "xcb-keysyms", "xcb-shape"}

    def find(name):
        return f"lib{name}.so" if name in present else None

    problem = display_problem(env, find, "Linux")
    assert problem.endswith("sudo apt install libxcb-render-util0 libxkbcommon-x11-0")
    assert display_problem(env, lambda name: f"lib{name}.so", "Linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, find, "Linux") is None
    assert display_problem({}, find, "Windows") is None
