"""Run folders and ladders, seen from outside: make a new one, list them, read what they hold.

    root = runs_root()                                  # data_dir()/runs (tokenscope.paths)
    folder = unique_run_dir("capitals")                 # capitals, else capitals-2, ...
    create_run(config)                                  # the folder and its run.json
    list_runs(root)                                     # RunInfo of each, newest first
    read_run_events(folder)                             # a run's events, or a ladder's

A run's folder holds run.json (its config) and events.jsonl (what happened), and what the
trainer keeps there (tokenizer, token files, checkpoints: see tokenscope.train.run_folder).
A ladder's folder holds run.json, a size-N folder per model size (each a run folder) and, once
it ended, ladder.json (its `ladder` event). No torch and no Qt: the window lists runs in its
thread pool, the command line measures them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenscope.files import FileReadError, atomic_write_text, load_json, open_regular_file
from tokenscope.train.events import (
    VERSION,
    CheckpointEvent,
    DoneEvent,
    EvalEvent,
    Event,
    LadderEvent,
    ProbeEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
    event_from_dict,
    parse_event,
    read_events,
)

if TYPE_CHECKING:
    from tokenscope.train.config import TrainConfig

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
#: a ladder's summary (its `ladder` event), kept in the ladder's folder
LADDER_FILE = "ladder.json"
CHECKPOINTS = "checkpoints"
SIZE_PREFIX = "size-"
#: listing reads only the tail of each run's events (a long run's file holds many thousands of
#: lines)
TAIL_BYTES = 64 * 1024
#: run.json and ladder.json: a few KB (a config is at most tokenscope.train.config's 10 MB)
MAX_SUMMARY_BYTES = 10 << 20
RUNNING = "running or interrupted"


def runs_root() -> Path:
    """Where runs started from the window go (see tokenscope.paths)."""
    from tokenscope.paths import runs_dir

    return runs_dir()


# ----- a new run -------------------------------------------------------------------------------


def unique_run_dir(name: str, root: Path | None = None) -> Path:
    """A folder for a new run called `name` that does not exist yet: root/name, else
    root/name-2, root/name-3, ... (never another run's folder). Nothing is created."""
    root = runs_root() if root is None else root
    run_dir, n = root / name, 2
    while run_dir.exists():
        run_dir = root / f"{name}-{n}"
        n += 1
    return run_dir


def create_run(config: TrainConfig) -> Path:
    """Make the config's out_dir and write its run.json there (atomically); return the folder.

    Raises FileExistsError when the folder exists already (a new run never trains into
    another's folder), or another OSError when it cannot be made."""
    run_dir = Path(config.out_dir)
    run_dir.mkdir(parents=True)
    atomic_write_text(run_dir / RUN_FILE, config.to_json())
    return run_dir


# ----- reading one run -------------------------------------------------------------------------


def read_run_settings(run_dir: str | Path) -> dict[str, Any]:
    """A run's run.json as it is ({} when it cannot be read): no checks, so that a run an
    older or newer version wrote still lists."""
    try:
        settings = load_json(Path(run_dir) / RUN_FILE, MAX_SUMMARY_BYTES, "a run's config")
    except FileReadError:  # (a FIFO or a folder there included: open() would block on a FIFO)
        return {}
    return settings if isinstance(settings, dict) else {}


def planned_steps(run_dir: str | Path) -> int | None:
    """The steps a run's run.json plans (None when it does not say)."""
    try:
        return int(read_run_settings(run_dir)["steps"])
    except (KeyError, ValueError, TypeError):
        return None


def tokens_per_step(run_dir: str | Path) -> float:
    """Training tokens per optimizer step, from the run's own step events (they count every
    process and accumulated micro-batch), else from its config (0.0: not known)."""
    run_dir = Path(run_dir)
    for event in reversed(read_events(run_dir / EVENTS_FILE)):
        if isinstance(event, StepEvent) and event.step and event.tokens:
            return float(event.tokens) / float(event.step)
    c = read_run_settings(run_dir)
    try:
        return float(c["batch_size"] * c["context"])  # (the batch is per optimizer step)
    except (KeyError, ValueError, TypeError):
        return 0.0


def read_run_events(folder: str | Path) -> list[Event]:
    """Everything a run's folder tells (blocking: for a background thread): its events, or for
    a ladder every size's events in turn, then the ladder's summary."""
    folder = Path(folder)
    if is_ladder_folder(folder):
        return read_ladder_events(folder)
    return read_events(folder / EVENTS_FILE)


def _tail_events(events_file: Path) -> list[Event]:
    """The events in the last TAIL_BYTES of a file (the first line read may be cut: skipped).
    FileReadError when it is not a regular file (a plain open() blocks on a FIFO)."""
    with open_regular_file(events_file, "a run's events (JSON lines)") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
        tail = f.read().splitlines()
    return [e for line in tail if (e := parse_event(line)) is not None]


@dataclass(frozen=True)
class RunInfo:
    """A run folder (or a ladder's) and what its files say about it."""

    path: str
    name: str
    status: str  # completed, stopped, failed, "running or interrupted", "size ladder, ..."
    step: int
    steps: int | None
    best_val_loss: float | None
    modified: float

    def label(self) -> str:
        """One line for a list of runs."""
        if self.status.startswith("size ladder"):
            return f"{self.name} — {self.status}"
        of = f"/{self.steps}" if self.steps else ""
        best = f", best validation loss {self.best_val_loss:.3f}" if self.best_val_loss else ""
        return f"{self.name} — step {self.step}{of}, {self.status}{best}"


def read_run_info(folder: Path) -> RunInfo:
    """Summarise a run folder from its run.json and the last lines of its events.jsonl."""
    steps = planned_steps(folder)
    status, step, best = "not started", 0, None
    try:
        events = _tail_events(folder / EVENTS_FILE)
        modified = (folder / EVENTS_FILE).stat().st_mtime
    except (OSError, FileReadError):
        events, modified = [], folder.stat().st_mtime
    if events:
        status = RUNNING
    for e in events:
        match e:
            case StartEvent():
                status = RUNNING
            case EvalEvent():
                step = e.step
                if e.val_loss is not None:
                    best = e.val_loss if best is None else min(best, e.val_loss)
            case DoneEvent():
                step = e.step if e.step is not None else step
                status = e.status or "done"
                if e.best_val_loss is not None:
                    best = e.best_val_loss
            case StepEvent() | ProbeEvent() | SampleEvent() | CheckpointEvent():
                step = e.step
            case WarningEvent(step=int() as warned_at):
                step = warned_at
    return RunInfo(str(folder), folder.name, status, step, steps, best, modified)


# ----- ladders ---------------------------------------------------------------------------------


def _size_folders(folder: Path) -> list[Path]:
    sizes = [
        p
        for p in folder.glob(SIZE_PREFIX + "*")
        if p.is_dir() and p.name.removeprefix(SIZE_PREFIX).isdigit()
    ]
    return sorted(sizes, key=lambda p: int(p.name.removeprefix(SIZE_PREFIX)))


def _is_one_run(folder: Path) -> bool:
    """A run's own folder: it has events or checkpoints of its own."""
    return (folder / EVENTS_FILE).is_file() or (folder / CHECKPOINTS).is_dir()


def is_ladder_folder(folder: str | Path) -> bool:
    """A ladder's folder: size-1, size-2, ... folders, and no run of its own."""
    folder = Path(folder).expanduser()
    return not _is_one_run(folder) and bool(_size_folders(folder))


def ladder_sizes(folder: str | Path) -> list[Path]:
    """The size folders of a ladder (size-1, size-2, ... each a run folder), smallest first;
    [] for a folder that is not a ladder's."""
    folder = Path(folder).expanduser()
    return _size_folders(folder) if is_ladder_folder(folder) else []


def read_ladder_events(folder: Path) -> list[Event]:
    """Every size's events in turn, then the ladder's summary if it finished (blocking: for
    a background thread)."""
    events: list[Event] = []
    for size in ladder_sizes(folder):
        events += read_events(size / EVENTS_FILE)
    try:
        summary = load_json(folder / LADDER_FILE, MAX_SUMMARY_BYTES, "a ladder's summary")
    except FileReadError:
        return events  # not finished (or not written, or damaged): the sizes still show
    if isinstance(summary, dict):
        ladder = event_from_dict({**summary, "v": VERSION, "event": LadderEvent.kind})
        if ladder is not None:
            events.append(ladder)
    return events


def read_ladder_info(folder: Path) -> RunInfo:
    """Summarise a ladder's folder: how many sizes, and whether its fit was made."""
    sizes = ladder_sizes(folder)
    done = (folder / LADDER_FILE).is_file()
    status = f"size ladder, {len(sizes)} sizes" + (", fitted" if done else ", unfinished")
    stamp = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in sizes])
    return RunInfo(str(folder), folder.name, status, 0, None, None, stamp)


# ----- every run -------------------------------------------------------------------------------


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run and ladder folder under root (runs_root() by default), newest first."""
    root = runs_root() if root is None else root
    if not root.is_dir():
        return []
    found = [
        read_ladder_info(p) if is_ladder_folder(p) else read_run_info(p)
        for p in root.iterdir()
        if p.is_dir() and any((p / name).is_file() for name in (EVENTS_FILE, RUN_FILE, LADDER_FILE))
    ]
    return sorted(found, key=lambda r: r.modified, reverse=True)


def run_sizes(folder: str | Path) -> list[Path]:
    """The runs in `folder` that have checkpoints: itself when it is such a run, else its
    sizes that have some when it is a ladder's folder, smallest first."""
    folder = Path(folder).expanduser()
    if (folder / CHECKPOINTS).is_dir():
        return [folder]
    return [size for size in ladder_sizes(folder) if (size / CHECKPOINTS).is_dir()]


def is_run_folder(target: str | Path) -> bool:
    """True for a training run's folder or a ladder's folder with checkpoints (not a single
    checkpoint)."""
    return bool(run_sizes(target)) if Path(target).expanduser().is_dir() else False


def run_label(run_dir: str | Path) -> str:
    """A run's name for a chart: its folder, with the ladder's for a size ("ladder/size-2")."""
    run_dir = Path(run_dir)
    is_size = run_dir.name.startswith(SIZE_PREFIX) and run_dir.parent.name
    return f"{run_dir.parent.name}/{run_dir.name}" if is_size else run_dir.name


def run_of_checkpoint(path: str) -> str:
    """A training run's folder from one of its checkpoints (RUN/checkpoints/step-N), so that
    the whole run is measured; anything else as it is."""
    p = Path(path)
    if p.parent.name == CHECKPOINTS and (p.parent.parent / RUN_FILE).is_file():
        return str(p.parent.parent)
    return path
