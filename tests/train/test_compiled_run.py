"""The opt-in compiled training step (config `compile`) in real training processes: it trains
as the eager loop does, saves plain parameter names, and a failing compiler is a warning."""

import os
import subprocess

import pytest
from safetensors import safe_open

import tokenscope
from tokenscope.train.config import TrainConfig
from tokenscope.train.events import DoneEvent, StartEvent, StepEvent, WarningEvent, parse_event

SHORT = {"steps": 6, "eval_every": 6, "sample_every": 6, "checkpoint_every": 6}


def _train(tools, config, **env: str):
    proc = subprocess.run(
        tools.train_command("--config", config),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [e for line in proc.stdout.splitlines() if (e := parse_event(line))]


def test_compile_is_a_checked_config_field():
    assert TrainConfig(data=("x",), out_dir="r").compile is False
    assert TrainConfig.from_dict({"data": ["x"], "out_dir": "r", "compile": True}).compile
    with pytest.raises(ValueError, match=r"compile must be true or false \(got 'yes'\)"):
        TrainConfig.from_dict({"data": ["x"], "out_dir": "r", "compile": "yes"})


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one_and_saves_plain_names(tmp_path, tools):
    eager = _train(tools, tools.run_config(tmp_path / "eager", **SHORT))
    compiled = _train(tools, tools.run_config(tmp_path / "compiled", compile=True, **SHORT))
    assert isinstance(compiled[-1], DoneEvent) and compiled[-1].status == "completed"
    start = tools.of_kind(compiled, StartEvent)[0]
    assert tools.of_kind(eager, StartEvent)[0].compiled is None  # not asked for
    warnings = [w.message for w in tools.of_kind(compiled, WarningEvent)]
    if start.compiled:
        assert not [w for w in warnings if "torch.compile" in w]
    else:  # no compiler on this machine: the run says why and trains all the same
        assert start.compiled is False
        assert [w for w in warnings if w.startswith("torch.compile failed")], warnings
    # The trial step's gradients were dropped: the same losses as the eager run, step by step,
    # within what fused kernels change in float32 (no dropout: inductor draws its own masks).
    losses = [[e.loss for e in tools.of_kind(run, StepEvent)] for run in (eager, compiled)]
    assert len(losses[1]) == 6 and losses[1] == pytest.approx(losses[0], rel=2e-4)
    checkpoint = compiled[-1].checkpoint
    with safe_open(os.path.join(checkpoint, "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "embed.weight" in names and not [n for n in names if "_orig_mod" in n]
    model = tokenscope.load_model(checkpoint)
    assert model.predict_next_token_probabilities("The capital").vector().sum() == (
        pytest.approx(1.0, abs=1e-4)
    )


@pytest.mark.slow
def test_without_a_compiler_the_run_warns_and_trains_uncompiled(tmp_path, tools):
    """Inductor builds C++ with $CXX on the CPU: one that does not exist is a machine
    without a compiler. A fresh cache, so nothing built earlier is reused."""
    config = tools.run_config(tmp_path, compile=True, **SHORT)
    events = _train(tools, config, CXX=str(tmp_path / "no-such-compiler"),
                    TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))  # fmt: skip
    assert tools.of_kind(events, StartEvent)[0].compiled is False
    warning = [w for w in tools.of_kind(events, WarningEvent) if "torch.compile" in w.message]
    assert len(warning) == 1 and warning[0].message.startswith(
        "torch.compile failed, so this run trains uncompiled: "
    )
    assert len(warning[0].message) > 60  # with the reason
    assert events[-1].status == "completed" and len(tools.of_kind(events, StepEvent)) == 6
