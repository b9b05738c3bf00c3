"""Two processes under real torchrun (gloo on CPU) follow the same trajectory as one, whether
each holds the whole model (DDP) or a shard of it (FSDP)."""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tokenscope.train.events import (
    CheckpointEvent,
    DoneEvent,
    EvalEvent,
    Event,
    ProbeEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    parse_event,
)


def _torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    found = str(script) if script.exists() else shutil.which("torchrun")
    assert found, "torchrun ships with torch and must be on the path"
    return [found]


def _train_on_two(config: Path, *args) -> list[Event]:
    """The events of a run in two processes under torchrun; it must end with exit status 0."""
    proc = subprocess.run(
        [*_torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "tokenscope.train",
         "--config", str(config), *map(str, args)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [e for line in proc.stdout.splitlines() if (e := parse_event(line))]


@pytest.mark.slow
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
    assert len(tools.of_kind(events_two, StartEvent)) == 1
    assert tools.of_kind(events_two, StartEvent)[0].world_size == 2
    assert events_two[-1].status == "completed"
    one = [e.loss for e in tools.of_kind(events_one, StepEvent)]
    two = [e.loss for e in tools.of_kind(events_two, StepEvent)]
    assert len(one) == len(two) == 12
    assert two == pytest.approx(one, rel=1e-3)
    val_one = tools.of_kind(events_one, EvalEvent)[-1].val_loss
    val_two = tools.of_kind(events_two, EvalEvent)[-1].val_loss
    assert val_two == pytest.approx(val_one, rel=1e-3)


@pytest.mark.slow
def test_a_sigterm_stops_every_process_cleanly_and_torchrun_exits_0(tmp_path, tools):
    """Through tokenscope.train.torchrun (torchrun itself exits 1 after any signal)."""
    config = tools.run_config(tmp_path, steps=100000, checkpoint_every=100000, eval_every=100000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenscope.train.torchrun", "--standalone",
         "--nproc-per-node", "2", "-m", "tokenscope.train", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    seen: list[Event] = []
    assert tools.read_until(proc, seen, lambda e: isinstance(e, StepEvent) and e.step == 2)
    proc.send_signal(signal.SIGTERM)
    stderr = tools.finish(proc, seen)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert isinstance(seen[-1], DoneEvent) and seen[-1].status == "stopped"
    assert isinstance(seen[-2], CheckpointEvent) and seen[-2].step == seen[-1].step


# Two micro-batches a step (FSDP's gradient sync off, then on), dropout, samples, probes and
# checkpoints on the way: everything that differs between the two strategies.
SHARDED_RUN = {"steps": 20, "grad_accum": 2, "dropout": 0.1, "eval_every": 10,
               "sample_every": 10, "checkpoint_every": 10}  # fmt: skip


@pytest.mark.slow
def test_fsdp_trains_as_ddp_does(tmp_path, tools):
    """Sharded parameters, gradients and optimizer state: the losses DDP has, step by step, the
    same evaluation, and the whole model (not a shard) in the checkpoints and the probes."""
    ddp = _train_on_two(tools.run_config(tmp_path / "ddp", strategy="ddp", **SHARDED_RUN))
    fsdp = _train_on_two(tools.run_config(tmp_path / "fsdp", strategy="fsdp", **SHARDED_RUN))
    assert fsdp[-1].status == "completed"
    assert tools.of_kind(fsdp, StartEvent)[0].config["strategy"] == "fsdp"

    def figures(events, kind, key):
        return [getattr(e, key) for e in tools.of_kind(events, kind)]

    losses = figures(ddp, StepEvent, "loss"), figures(fsdp, StepEvent, "loss")
    assert len(losses[0]) == len(losses[1]) == 20
    assert max(abs(a - b) for a, b in zip(*losses, strict=True)) <= 1e-4
    assert figures(fsdp, StepEvent, "grad_norm") == pytest.approx(
        figures(ddp, StepEvent, "grad_norm"), rel=1e-4
    )
    for key in ("train_loss", "val_loss"):
        evals = figures(ddp, EvalEvent, key), figures(fsdp, EvalEvent, key)
        assert len(evals[1]) == 2 and max(abs(a - b) for a, b in zip(*evals, strict=True)) <= 1e-4
    # Probes and samples run on the copy gathered onto rank 0: the same model as DDP's.
    probes = figures(ddp, ProbeEvent, "probability"), figures(fsdp, ProbeEvent, "probability")
    assert len(probes[1]) == 2 and probes[1] == pytest.approx(probes[0], rel=1e-3)
    assert len(tools.of_kind(fsdp, SampleEvent)) == 2
    last = Path("run", "checkpoints", "step-000020", "model.safetensors")
    saved_ddp, saved_fsdp = load_file(tmp_path / "ddp" / last), load_file(tmp_path / "fsdp" / last)
    assert sorted(saved_fsdp) == sorted(saved_ddp)
    for name, tensor in saved_ddp.items():
        assert saved_fsdp[name].shape == tensor.shape, name
        torch.testing.assert_close(saved_fsdp[name], tensor, rtol=0, atol=1e-3)


@pytest.mark.slow
def test_an_fsdp_run_stopped_and_resumed_ends_as_one_run(tmp_path, tools):
    """The gathered checkpoint (weights and AdamW moments) is loaded back into the shards; it
    is an ordinary checkpoint, so DDP resumes it too."""
    whole = _train_on_two(tools.run_config(tmp_path / "a", strategy="fsdp", **SHARDED_RUN))
    config = tools.run_config(tmp_path / "b", strategy="fsdp", **SHARDED_RUN)
    first = _train_on_two(config, "--stop-at-step", 10)
    assert first[-1].status == "stopped" and first[-1].step == 10
    shutil.copytree(tmp_path / "b" / "run", tmp_path / "c" / "run")
    second = _train_on_two(config, "--resume")
    assert tools.of_kind(second, StartEvent)[0].resumed_from == 10
    one = [e.loss for e in tools.of_kind(whole, StepEvent)]
    two = [e.loss for e in tools.of_kind(first + second, StepEvent)]
    assert len(one) == len(two) == 20
    assert two == pytest.approx(one, rel=1e-5, abs=1e-6)
    val_one = tools.of_kind(whole, EvalEvent)[-1].val_loss
    assert tools.of_kind(second, EvalEvent)[-1].val_loss == pytest.approx(val_one, rel=1e-5)

    under_ddp = tools.run_config(tmp_path / "c", strategy="ddp", **SHARDED_RUN)
    third = _train_on_two(under_ddp, "--resume")
    assert tools.of_kind(third, StartEvent)[0].resumed_from == 10
    three = [e.loss for e in tools.of_kind(first + third, StepEvent)]
    assert max(abs(a - b) for a, b in zip(one, three, strict=True)) <= 1e-4


def test_the_multinode_command_is_one_torchrun_accepts(tmp_path):
    from torch.distributed.run import get_args_parser

    from tokenscope.launch import multinode_command

    config = tmp_path / "my runs" / "capitals" / "run.json"  # a space: quoted for the shell
    line = multinode_command(config, 2, 8, "node0.lan:29500", strategy="fsdp")
    words = shlex.split(line)
    assert words[0] == "torchrun"
    parsed = get_args_parser().parse_args(words[1:])
    assert (parsed.nnodes, parsed.nproc_per_node) == ("2", "8")
    assert (parsed.rdzv_backend, parsed.rdzv_endpoint) == ("c10d", "node0.lan:29500")
    assert parsed.rdzv_id == "capitals" and parsed.module
    assert parsed.training_script == "tokenscope.train"
    assert parsed.training_script_args == ["--config", str(config), "--set", "strategy=fsdp"]
    # What torchrun hands the trainer is a command line it accepts, with that strategy.
    from tokenscope.train.cli import _load_config, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"data": ["corpus"], "out_dir": "run", "preset": "tiny"}))
    loaded = _load_config(parser.parse_args(parsed.training_script_args))
    assert loaded.strategy == "fsdp" and Path(loaded.out_dir) == (config.parent / "run").resolve()


def test_the_cli_prints_the_multinode_command(tmp_path, tools):
    config = tools.run_config(tmp_path, strategy="fsdp", name="capitals")
    args = ("--config", config, "--print-torchrun", "--nnodes", "3", "--nproc-per-node", "4")
    proc = subprocess.run(tools.train_command(*args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"torchrun --nnodes 3 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
        f"--rdzv-id capitals -m tokenscope.train --config {shlex.quote(str(config))}\n"
    )
    refused = subprocess.run(tools.train_command(*args, "--resume"), capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and refused.stdout == ""
    assert "leave out --resume" in refused.stderr
