"""The Training tab's plan on its own: how several processes share the model, and the command
that trains the run on several machines."""

from __future__ import annotations

import shlex

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from tokenscope.gui import background


def test_the_strategy_reaches_the_config_and_the_multinode_command(qtbot, tmp_path):
    from tokenscope.gui.training.training_plan import TrainingPlan
    from tokenscope.train.config import TrainConfig

    plan = TrainingPlan()
    qtbot.addWidget(plan)
    # One process: nothing to share, so nothing to choose.
    assert not plan.strategy.isEnabled() and plan.config_fields()["strategy"] == "ddp"
    assert "shards parameters, gradients and optimizer state" in plan.strategy.toolTip()
    plan.processes.setValue(4)
    assert plan.strategy.isEnabled()
    plan.strategy.setCurrentIndex(plan.strategy.findData("fsdp"))
    fields = plan.config_fields()
    config = TrainConfig.from_dict({**fields, "data": ["corpus"], "out_dir": str(tmp_path)})
    assert config.strategy == "fsdp"

    run_config = tmp_path / "my runs" / "capitals" / "run.json"  # quoted for the shell
    plan.set_run_config(run_config)
    assert plan.multinode.isReadOnly()
    line = plan.multinode.text()
    words = shlex.split(line)
    assert words[:5] == ["torchrun", "--nnodes", "2", "--nproc-per-node", "4"]
    assert words[words.index("--config") + 1] == str(run_config)
    assert words[-2:] == ["--set", "strategy=fsdp"]
    qtbot.mouseClick(plan.copy_multinode, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == line

    plan.processes.setValue(1)
    assert not plan.strategy.isEnabled()
    assert "--nproc-per-node 1 " in plan.multinode.text()
    assert background.wait_for_all(30)  # the device detection each change starts
