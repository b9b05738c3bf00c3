"""Helpers for training tests: a small corpus and a real `python -m tokenscope.train` process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tokenscope.train.events import Event, StepEvent, parse_event

CAPITALS = [
    ("Indonesia", "Jakarta"),
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Egypt", "Cairo"),
]


def write_corpus(folder: Path, lines: int = 1500, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "capitals.txt", "w", encoding="utf-8") as f:
        for _ in range(lines):
            country, city = rng.choice(CAPITALS)
            f.write(f"The capital of {country} is {city}.\n")
    return folder


def run_config(tmp_path: Path, **overrides) -> Path:
    """Write a run.json for a tiny, fast run; return its path."""
    config = {
        "data": ["corpus"],
        "out_dir": "run",
        "preset": "tiny",
        "tokenizer": "bpe",
        "vocab_size": 300,
        "steps": 20,
        "batch_size": 8,
        "context": 32,
        "learning_rate": 0.01,
        "warmup_steps": 3,
        "log_every": 1,
        "eval_every": 10,
        "eval_batches": 2,
        "sample_every": 10,
        "sample_tokens": 8,
        "checkpoint_every": 10,
        "threads": 1,
        "probes": [{"prompt": "The capital of Indonesia is", "continuation": " Jakarta"}],
    }
    config.update(overrides)
    if not (tmp_path / "corpus").exists():
        write_corpus(tmp_path / "corpus")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    return path


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tokenscope.train", *map(str, args)]


def train(*args: str, ok: bool = True) -> tuple[list[Event], subprocess.CompletedProcess]:
    """Run training to the end in a subprocess; return its events (from stdout) and the process."""
    proc = subprocess.run(
        train_command(*args),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    events = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
    return events, proc


def of_kind(events: list[Event], kind: type[Event]) -> list:
    return [e for e in events if isinstance(e, kind)]


def start(*args: str, **popen) -> subprocess.Popen:
    """A trainer running in the background, its stdout a pipe of text lines."""
    return subprocess.Popen(
        train_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **popen,
    )


def read_until(proc: subprocess.Popen, seen: list[Event], stop) -> Event | None:
    """Read events into `seen` until `stop(event)` is true (that event is returned) or the
    output ends (None)."""
    for line in proc.stdout:
        event = parse_event(line)
        if event is not None:
            seen.append(event)
            if stop(event):
                return event
    return None


def finish(proc: subprocess.Popen, seen: list[Event], timeout: float = 120) -> str:
    """Read the remaining events into `seen`, wait for the process; return its stderr."""
    read_until(proc, seen, lambda event: False)
    proc.wait(timeout=timeout)
    return proc.stderr.read()


def step_losses(events: list[Event]) -> dict[int, list[float]]:
    """Every loss reported for each step (a step redone after a resume appears twice)."""
    losses: dict[int, list[float]] = {}
    for e in of_kind(events, StepEvent):
        losses.setdefault(e.step, []).append(e.loss)
    return losses


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def tools():
    """The helpers above, for test modules (conftest is not importable in importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_corpus=write_corpus,
        run_config=run_config,
        train=train,
        train_command=train_command,
        of_kind=of_kind,
        start=start,
        read_until=read_until,
        finish=finish,
        step_losses=step_losses,
    )


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tokenscope-test", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a disk that can be made full and then larger again.

    As root (CI): a tmpfs of its own, so writes fail with ENOSPC as on a real full disk.
    Otherwise: the folder stays on the normal disk and `popen()` gives the trainer an
    RLIMIT_FSIZE, so its writes fail with EFBIG, the nearest a normal user can get.
    """
    from types import SimpleNamespace

    folder = tmp_path / "disk"
    mounted = _mount_tmpfs(folder, "size=16m")
    state = {"limit": None}

    def fill(headroom: int) -> None:
        """Leave about `headroom` bytes free."""
        if mounted:
            st = os.statvfs(folder)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            size = used + headroom
            subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
        else:
            state["limit"] = headroom

    def grow() -> None:
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
        state["limit"] = None

    def popen() -> dict:
        limit = state["limit"]
        if limit is None:
            return {}

        def cap() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a core dump
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return {"preexec_fn": cap}

    @contextlib.contextmanager
    def here():
        """The same limit for code run in this process (tmpfs: nothing to do)."""
        limit = state["limit"]
        if limit is None:
            yield
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)

    yield SimpleNamespace(path=folder, tmpfs=mounted, fill=fill, grow=grow, popen=popen, here=here)
    if mounted:
        _unmount(folder)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write in: a read-only tmpfs as root (root ignores permission
    bits), a folder without write permission otherwise."""
    folder = tmp_path / "read-only"
    if _mount_tmpfs(folder, "ro,size=1m"):
        yield folder
        _unmount(folder)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
