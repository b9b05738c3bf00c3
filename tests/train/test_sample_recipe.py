"""The bundled sample text as a recipe (`tokenscope train --recipe shakespeare`), and what the
trainer tells the window between the text and the first steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tokenscope.files import resource_path
from tokenscope.train.config import TrainConfig, recipe_path


def test_the_shakespeare_recipe_trains_the_default_shape_on_the_sample_text():
    config = TrainConfig.from_file(recipe_path("shakespeare"))
    assert config.data == (str(resource_path("sample", "shakespeare.txt").resolve()),)
    assert config.preset == "mini" and config.steps == 500
    assert 500_000 < config.model_config(2048).parameter_count() < 2_000_000


@pytest.mark.slow
def test_a_run_says_when_it_builds_the_model_and_reports_its_first_step(tmp_path):
    command = [
        sys.executable, "-m", "tokenscope.train", "--recipe", "shakespeare",
        "--set", "steps=3", "--set", "log_every=10", "--set", "eval_every=3",
        "--set", "eval_batches=1", "--set", "sample_every=3", "--set", "sample_tokens=4",
        "--set", "threads=1",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kinds = [(e["event"], e.get("stage")) for e in events]
    tokenized = kinds.index(("progress", "tokenize"))
    building = kinds.index(("progress", "model"))
    started = kinds.index(("start", None))
    assert tokenized < building < started  # the window can say "building the model"
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == [1, 3]  # the first step is reported even though log_every is 10
    assert events[-1]["event"] == "done" and events[-1]["status"] == "completed"
    assert (tmp_path / "runs" / "shakespeare" / "events.jsonl").is_file()
