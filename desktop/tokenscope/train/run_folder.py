"""A run folder: its checkpoints (latest, best), its lock, and what earlier runs left.

No torch needed: the window lists runs and opens their checkpoints without importing the
training code. Making, listing and reading runs (and ladders) is tokenscope.train.runs.

    RUN/run.json, events.jsonl, tokenizer.json, data/     the run and its token files
    RUN/checkpoints/step-NNNNNN/, best.json                its checkpoints
    RUN/trainer.lock                                       held by the trainer using the folder
    RUN/earlier-runs/<time>/                               what a new run found and set aside
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.run_checkpoints import (  # the engine reads checkpoints without training
    BEST_FILE,
    STATE_FILE,
    best_checkpoint,
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
    step_folder,
)

__all__ = [
    "BEST_FILE",
    "EARLIER_RUNS",
    "LOCK_FILE",
    "STATE_FILE",
    "STOP_FILE",
    "RunFolderBusy",
    "RunLock",
    "best_checkpoint",
    "checkpoint_dir",
    "has_earlier_run",
    "latest_checkpoint",
    "list_checkpoints",
    "remove_leftovers",
    "set_aside_earlier_run",
    "step_folder",
]

# A file that asks the run in progress to save a checkpoint and stop; every rank checks for it
# between steps, also under torchrun.
STOP_FILE = "STOP"

# ----- one trainer per run folder --------------------------------------------------------------

LOCK_FILE = "trainer.lock"


class RunFolderBusy(TokenscopeError):
    """Another trainer holds the run folder."""

    def __init__(self, run_dir: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "a process whose pid could not be read"
        super().__init__(
            f"the run folder {run_dir} is in use by another trainer ({who}); wait for it to "
            "finish or stop it, or train into another folder"
        )
        self.pid = pid


class RunLock:
    """An exclusive flock on RUN/trainer.lock, held while a trainer uses the folder.

    The kernel releases it when the process ends in any way (kill -9 included), so a stale
    lock never blocks a resume. The file holds the holder's pid, for the refusal message; it
    is never deleted (deleting a lock file lets two processes lock two different files).
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Lock the folder, or raise RunFolderBusy naming the holder's pid."""
        path = run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunFolderBusy(run_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = -1


def _read_pid(fd: int) -> int | None:
    # The holder writes its pid right after locking; give it a moment if it has not yet.
    for _ in range(20):
        raw = os.pread(fd, 32, 0).strip()
        if raw.isdigit():
            return int(raw)
        time.sleep(0.01)
    return None


# ----- leftovers of interrupted writes, and of earlier runs ------------------------------------

EARLIER_RUNS = "earlier-runs"


def remove_leftovers(run_dir: Path) -> list[str]:
    """Finish or undo what a killed trainer left half done; return what was cleaned.

    `.tmp-step-*` folders are checkpoints that were never completed: removed. `.old-step-*`
    is a checkpoint being replaced by a newer save of the same step: put back if the new one
    never arrived, else removed. `.*.tmp` files are atomic writes that never finished.
    Only call this while holding the folder's lock.
    """
    cleaned: list[str] = []
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for p in sorted(folder.glob(".tmp-step-*")):
            shutil.rmtree(p, ignore_errors=True)
            cleaned.append(p.name)
        for p in sorted(folder.glob(".old-step-*")):
            final = p.with_name(p.name.removeprefix(".old-"))
            if final.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.replace(p, final)
            cleaned.append(p.name)
    for where in (run_dir, folder, run_dir / "data"):
        if where.is_dir():
            for p in where.glob(".*.tmp"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    cleaned.append(p.name)
    return cleaned


def has_earlier_run(run_dir: Path) -> bool:
    """Whether the folder holds checkpoints or events of a run (before a new one starts)."""
    folder = checkpoint_dir(run_dir)
    events = run_dir / "events.jsonl"
    return (folder.is_dir() and any(folder.iterdir())) or (
        events.is_file() and events.stat().st_size > 0
    )


def set_aside_earlier_run(run_dir: Path) -> Path | None:
    """Move an earlier run's checkpoints, events and tokenizer into RUN/earlier-runs/<time>/.

    A new run in a folder must neither prune nor report checkpoints it did not make; nothing
    a person trained is deleted. Returns where the earlier run went (None: nothing there).
    Only call this while holding the folder's lock.
    """
    if not has_earlier_run(run_dir):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir / EARLIER_RUNS / stamp
    suffix = 2
    while target.exists():
        target = run_dir / EARLIER_RUNS / f"{stamp}-{suffix}"
        suffix += 1
    target.mkdir(parents=True)
    for name in ("checkpoints", "events.jsonl", "tokenizer.json"):
        if (run_dir / name).exists():
            os.replace(run_dir / name, target / name)
    if (run_dir / "run.json").is_file():  # the new run writes its own; keep the old one's
        shutil.copy2(run_dir / "run.json", target / "run.json")
    return target
