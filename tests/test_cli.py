"""The command line, run as a person runs it: a separate process."""

import json
import subprocess
import sys

import pytest


def run(*args, ok=True):
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
    proc = run(
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
    assert proc.returncode == 2 and "top_p must be in (0, 1]" in proc.stderr


def test_version():
    import tokenscope

    assert run("--version").stdout.strip() == f"tokenscope {tokenscope.__version__}"
