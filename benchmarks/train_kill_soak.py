"""Training under kill -9, in a loop: every resume must reproduce the uninterrupted run.

A reference run trains a tiny model to the end. The same run is then started, killed with
SIGKILL at a random moment (while tokenizing, between steps, or inside the eval and the
checkpoint write that follow a step), resumed, killed again, and so on; finally it resumes to
the end. Every loss ever reported for a step must equal the reference's. Also measured: how
fast a SIGTERM is honoured while a large corpus is being tokenized.

    python benchmarks/train_kill_soak.py                   # 30 kills, a 50 MB corpus
    python benchmarks/train_kill_soak.py --kills 200 --sigterm-mb 200

Printed: where the kills landed, how many losses differed (must be 0), leftovers after the
last resume (must be none), and seconds from SIGTERM to the trainer's exit while tokenizing.
tests/train/test_hostile_runs.py runs a short version of the loop in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokenscope.train.events import DoneEvent, ProgressEvent, StepEvent, parse_event, read_events

CAPITALS = [("Indonesia", "Jakarta"), ("France", "Paris"), ("Japan", "Tokyo"),
            ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Egypt", "Cairo")]  # fmt: skip
STEPS = 40


def write_corpus(folder: Path, megabytes: float, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "capitals.txt"
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < megabytes * 1e6:
            country, city = rng.choice(CAPITALS)
            line = f"The capital of {country} is {city}.\n"
            written += f.write(line)
    return folder


def write_config(folder: Path, corpus: Path, **changes) -> Path:
    config = {
        "data": [str(corpus)], "out_dir": str(folder / "run"), "preset": "tiny",
        "tokenizer": "bpe", "vocab_size": 300, "steps": STEPS, "batch_size": 8,
        "context": 32, "learning_rate": 0.01, "warmup_steps": 3, "log_every": 1,
        "eval_every": 8, "eval_batches": 2, "sample_every": 1000, "checkpoint_every": 2,
        "dropout": 0.1, "threads": 1, **changes,
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.json"
    path.write_text(json.dumps(config))
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tokenscope.train", *map(str, args)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def losses_by_step(events: list) -> dict[int, list[float]]:
    found: dict[int, list[float]] = {}
    for e in events:
        if isinstance(e, StepEvent):
            found.setdefault(e.step, []).append(e.loss)
    return found


def kill_loop(root: Path, kills: int, seed: int) -> dict:
    corpus = write_corpus(root / "corpus", 0.2)
    reference_config = write_config(root / "reference", corpus)
    done = subprocess.run(command("--config", reference_config), capture_output=True,
                          text=True, env=ENV, check=True)  # fmt: skip
    reference = {e.step: e.loss for line in done.stdout.splitlines()
                 if isinstance(e := parse_event(line), StepEvent)}  # fmt: skip
    config = write_config(root / "killed", corpus)
    run = root / "killed" / "run"
    rng = random.Random(seed)
    landed = {"tokenizing": 0, "inside a checkpoint write": 0, "elsewhere": 0}
    args = ["--config", config]
    last_step = 0
    for i in range(kills):
        if last_step >= STEPS - 1:  # nearly finished: start a fresh run over the same folder
            args, last_step = ["--config", config], 0
        proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=ENV)  # fmt: skip
        tokenize = i % 5 == 0
        target = last_step + rng.randint(1, 4)
        for line in proc.stdout:
            e = parse_event(line)
            if e is None:
                continue
            if tokenize and isinstance(e, ProgressEvent) and e.stage == "tokenize":
                break
            if not tokenize and isinstance(e, StepEvent) and e.step >= target:
                time.sleep(rng.uniform(0, 0.03))
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        ckpts = run / "checkpoints"
        if tokenize:
            landed["tokenizing"] += 1
        elif ckpts.is_dir() and any(p.name.startswith(".tmp-") for p in ckpts.iterdir()):
            landed["inside a checkpoint write"] += 1
        else:
            landed["elsewhere"] += 1
        # This run's history (a fresh start sets the earlier one aside).
        history = read_events(run / "events.jsonl")
        last_step = max((e.step for e in history if isinstance(e, StepEvent)), default=0)
        args = ["--config", config, "--resume"]
    subprocess.run(command(*args), capture_output=True, env=ENV, check=True)
    complete = [e for e in read_events(run / "events.jsonl") if isinstance(e, DoneEvent)][-1]
    history = [e for path in [*sorted(run.glob("earlier-runs/*/events.jsonl")),
                              run / "events.jsonl"] for e in read_events(path)]  # fmt: skip
    differing = sum(
        1
        for step, losses in losses_by_step(history).items()
        for loss in losses
        if abs(loss - reference[step]) > 1e-5 * abs(reference[step]) + 1e-6
    )
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    reported = sum(map(len, losses_by_step(history).values()))
    return {"landed": landed, "differing": differing, "leftovers": leftovers,
            "status": complete.status, "reported": reported}  # fmt: skip


def sigterm_while_tokenizing(root: Path, megabytes: float) -> list[tuple[str, float]]:
    """Seconds from SIGTERM to exit, sent in the tokenizer-training and tokenizing stages."""
    corpus = write_corpus(root / "big", megabytes)
    results = []
    for stage in ("tokenizer", "tokenize"):
        config = write_config(root / f"sigterm-{stage}", corpus)
        proc = subprocess.Popen(command("--config", config), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=ENV)  # fmt: skip
        for line in proc.stdout:
            e = parse_event(line)
            if (
                isinstance(e, ProgressEvent)
                and e.stage == stage
                and (stage == "tokenizer" or e.done > 0)
            ):
                break
        if stage == "tokenizer":
            time.sleep(1.0)  # well inside the tokenizer's training
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        proc.wait()
        results.append((stage, time.monotonic() - sent, proc.returncode))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sigterm-mb", type=float, default=50.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tokenscope-soak-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        soak = kill_loop(root, args.kills, args.seed)
        print(f"kill -9 loop: {args.kills} kills in {time.monotonic() - started:.0f} s")
        for where, count in soak["landed"].items():
            print(f"  {where:<28} {count:>4}")
        print(f"  losses reported              {soak['reported']:>4}")
        print(f"  losses differing             {soak['differing']:>4}   (must be 0)")
        print(f"  leftovers after the end      {len(soak['leftovers']):>4}   (must be 0)")
        print(f"  final status                 {soak['status']}")
        if args.sigterm_mb > 0:
            print(f"SIGTERM while preparing a {args.sigterm_mb:g} MB corpus:")
            for stage, seconds, code in sigterm_while_tokenizing(root, args.sigterm_mb):
                print(f"  {stage:<12} exit {code} after {seconds:5.2f} s")


if __name__ == "__main__":
    main()
