"""Helpers for training tests: a small corpus and a real `python -m tokenscope.train` process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tokenscope.train.events import parse_event

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


def train(*args: str, ok: bool = True) -> tuple[list[dict], subprocess.CompletedProcess]:
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


def of_kind(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


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
    )
