"""Two processes under real torchrun (gloo on CPU) follow the same trajectory as one."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tokenscope.train.events import parse_event


def _torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    found = str(script) if script.exists() else shutil.which("torchrun")
    assert found, "torchrun ships with torch and must be on the path"
    return [found]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tools):
    single = tools.run_config(tmp_path / "one", steps=12, eval_every=6, sample_every=1000)
    events_one, _ = tools.train("--config", single)

    double = tools.run_config(tmp_path / "two", steps=12, eval_every=6, sample_every=1000)
    proc = subprocess.run(
        [
            *_torchrun(),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "tokenscope.train",
            "--config",
            str(double),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events_two = [e for line in proc.stdout.splitlines() if (e := parse_event(line))]
    # Rank 0 alone writes: one start, one done, one line per step.
    assert len(tools.of_kind(events_two, "start")) == 1
    assert tools.of_kind(events_two, "start")[0]["world_size"] == 2
    assert events_two[-1]["status"] == "completed"
    one = [e["loss"] for e in tools.of_kind(events_one, "step")]
    two = [e["loss"] for e in tools.of_kind(events_two, "step")]
    assert len(one) == len(two) == 12
    assert two == pytest.approx(one, rel=1e-3)
    val_one = tools.of_kind(events_one, "eval")[-1]["val_loss"]
    val_two = tools.of_kind(events_two, "eval")[-1]["val_loss"]
    assert val_two == pytest.approx(val_one, rel=1e-3)


def test_a_sigterm_stops_every_process_cleanly_and_torchrun_exits_0(tmp_path, tools):
    """Through tokenscope.train.torchrun (torchrun itself exits 1 after any signal)."""
    config = tools.run_config(tmp_path, steps=100000, checkpoint_every=100000, eval_every=100000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenscope.train.torchrun", "--standalone",
         "--nproc-per-node", "2", "-m", "tokenscope.train", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    seen: list[dict] = []
    assert tools.read_until(proc, seen, lambda e: e.get("step") == 2)
    proc.send_signal(signal.SIGTERM)
    stderr = tools.finish(proc, seen)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert seen[-1]["event"] == "done" and seen[-1]["status"] == "stopped"
    assert seen[-2]["event"] == "checkpoint" and seen[-2]["step"] == seen[-1]["step"]
