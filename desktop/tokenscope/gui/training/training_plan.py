"""The model and budget part of the Training tab: a preset or custom shape, steps, batch,
processes and how they share the model (DDP or FSDP); and, as they change, parameters, memory,
FLOPs per token, the compute for the planned tokens, how many passes over the corpus that is,
the time it will take, and the torchrun command that trains the run on several machines.

The estimates are arithmetic on ModelConfig (no torch). The time starts as a rough guess from
the device's peak FLOP/s and becomes a measurement: a second after the plan stops changing,
the trainer times the parts of the run (start-up, preparing the text, a step, an evaluation, a
sample, a checkpoint) in a process of its own (RunMeasurer: one at a time, none during a run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.training.run_measurer import RunMeasurer
from tokenscope.gui.training.training_process import threads_note, trainer_threads
from tokenscope.launch import multinode_command
from tokenscope.lm.config import PRESETS, ModelConfig, preset
from tokenscope.train.devices import TrainingDevice, detect_device
from tokenscope.train.estimate import RunEstimate, estimate_run
from tokenscope.units import format_bytes, format_count, format_duration

CUSTOM = "custom"
# The bundled model's shape: about a million parameters, minutes on a laptop.
DEFAULT_PRESET = "mini"
DEFAULT_STEPS = 500  # with the default batch: a few passes over the sample text
# Small models reach only a fraction of a device's peak (kernel launches, memory traffic);
# the run's measured tokens/s replaces this guess once it starts.
ASSUMED_UTILIZATION = {"cpu": 0.1, "cuda": 0.3}
ADAM_BYTES_PER_PARAMETER = 16  # float32 weights, gradients and two Adam moments
MEASURE_AFTER_MS = 1200  # the plan must rest this long before a burst is measured
MANY_EPOCHS = 10  # more passes over the text than this: say the model will memorise it
NODES = 2  # machines in the command shown for several machines (more: change --nnodes)
RDZV_PLACEHOLDER = "HOST:29500"  # one of the machines, as the others reach it
NO_RUN_YET = Path("RUN") / "run.json"  # the command's config until a run is shown
STRATEGY_TIP = (
    "How several processes share the model. DDP keeps a whole copy on each. FSDP shards "
    "parameters, gradients and optimizer state across the processes, for models that do not "
    "fit one device. The losses are the same."
)


class TrainingPlan(QGroupBox):
    """Model shape, training budget and the estimates that follow from them."""

    #: (ModelConfig or None) — the planned model changed (None: the shape is invalid);
    #: GUI thread
    plan_changed = Signal(object)

    # A name QWidget has as a method (width()); the attribute hides it from Python (Qt calls
    # the C++ one). Renaming it would change what tests and callers use.
    width: QSpinBox  # type: ignore[assignment]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model and budget", parent)
        self.setObjectName("trainingPlan")
        self.vocab_size = 2048
        self.device: TrainingDevice | None = None
        self._base = DEFAULT_PRESET  # the preset a custom shape starts from (GPT-2 or Llama style)
        self._device_id = 0
        self.corpus_tokens: int | None = None  # of the text chosen, as estimated
        self.corpus_chars: int | None = None
        self.data_paths: list[str] = []
        self.tokenizer_kind = "bpe"
        # (what was measured, the parts, the process's start-up seconds)
        self.measured: tuple[tuple, dict[str, Any], float] | None = None
        self.run_estimate: RunEstimate | None = None  # the latest, from a measurement
        self.training = False  # a run is going: nothing is measured beside it
        self.measurer = RunMeasurer(self)
        self.measurer.measured.connect(self._on_measured)
        self.measurer.failed.connect(self._on_measure_failed)
        self._measure_timer = QTimer(self, singleShot=True, interval=MEASURE_AFTER_MS)
        self._measure_timer.timeout.connect(self.measure)
        self._build()
        self._on_preset_changed()
        self._update_multinode()

    def _build(self) -> None:
        def spin(name: str, low: int, high: int, value: int, accessible: str) -> QSpinBox:
            box = QSpinBox(objectName=name, minimum=low, maximum=high, value=value)
            box.setAccessibleName(accessible)
            return box

        self.preset = QComboBox(objectName="modelPreset")
        self.preset.setAccessibleName("Model preset")
        for name in PRESETS:
            self.preset.addItem(name, name)
        self.preset.addItem(CUSTOM, CUSTOM)
        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))
        self.layers = spin("layersControl", 1, 96, 4, "Layers")
        self.heads = spin("headsControl", 1, 128, 4, "Attention heads")
        self.width = spin("widthControl", 8, 16384, 256, "Width (d_model)")
        self.width.setSingleStep(32)
        self.context = spin("contextControl", 8, 131072, 256, "Context length")
        self.steps = spin("stepsControl", 1, 10_000_000, DEFAULT_STEPS, "Training steps")
        self.batch = spin("batchControl", 1, 4096, 16, "Batch size (sequences per step)")
        self.eval_every = spin("evalEveryControl", 1, 1_000_000, 100, "Evaluate every N steps")
        self.processes = spin("processesControl", 1, 64, 1, "Processes")
        self.processes.setToolTip("More than one runs the trainer under torchrun (DDP or FSDP)")
        self.strategy = QComboBox(objectName="strategyControl", enabled=False)
        self.strategy.setAccessibleName("How processes share the model")
        self.strategy.addItem("DDP", "ddp")
        self.strategy.addItem("FSDP", "fsdp")
        self.strategy.setToolTip(STRATEGY_TIP)
        self.run_config: Path | None = None  # the shown run's config, for the command below
        self.multinode = QLineEdit(objectName="multinodeCommand", readOnly=True)
        self.multinode.setAccessibleName("Command to train this run on several machines")
        self.multinode.setToolTip(
            f"Type it on each of the {NODES} machines, with {RDZV_PLACEHOLDER} replaced by one "
            "of them; every machine must see the run's files at the same paths"
        )
        self.copy_multinode = QPushButton("Copy", objectName="copyMultinodeCommand")
        self.copy_multinode.setAccessibleName("Copy the command for several machines")
        self.lr = QDoubleSpinBox(objectName="learningRateControl", decimals=5, minimum=1e-5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-3)
        self.lr.setAccessibleName("Peak learning rate")
        self.threads_label = QLabel(objectName="threadsInfo", wordWrap=True)
        self.estimates = QLabel(objectName="modelEstimates", wordWrap=True)

        shape = QFormLayout()
        shape.addRow("Preset", self.preset)
        shape.addRow("Layers", self.layers)
        shape.addRow("Heads", self.heads)
        shape.addRow("Width", self.width)
        shape.addRow("Context", self.context)
        budget = shape  # one form: its fields line up
        budget.addRow("Steps", self.steps)
        budget.addRow("Batch", self.batch)
        budget.addRow("Learning rate", self.lr)
        budget.addRow("Evaluate every", self.eval_every)
        processes = QHBoxLayout()
        processes.addWidget(self.processes)
        processes.addWidget(self.strategy)
        budget.addRow("Processes", processes)
        layout = QVBoxLayout(self)  # one column: the panel fits beside the charts at 1024 px
        layout.addLayout(shape)
        layout.addWidget(self.threads_label)
        layout.addWidget(self.estimates)
        several = QHBoxLayout()
        several.addWidget(self.multinode, 1)
        several.addWidget(self.copy_multinode)
        layout.addWidget(QLabel("On several machines:"))
        layout.addLayout(several)

        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        for box in (self.layers, self.heads, self.width, self.context):
            box.valueChanged.connect(self._on_shape_edited)
        for box in (self.steps, self.batch):
            box.valueChanged.connect(self._on_budget_changed)
        self.processes.valueChanged.connect(self._on_processes_changed)
        self.strategy.currentIndexChanged.connect(self._update_multinode)
        self.copy_multinode.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.multinode.text())
        )

    # ----- what the run uses ----------------------------------------------------------------

    def base_preset(self) -> str:
        """The preset the run starts from (a custom shape keeps its base's style)."""
        name = str(self.preset.currentData())
        return self._base if name == CUSTOM else name

    def model_overrides(self) -> dict[str, Any]:
        """ModelConfig fields that differ from the base preset (sent as the run's `model`)."""
        base = PRESETS[self.base_preset()]
        overrides: dict[str, Any] = {
            "n_layer": self.layers.value(),
            "n_head": self.heads.value(),
            "d_model": self.width.value(),
            "context_length": self.context.value(),
        }
        if base.n_kv_head and self.heads.value() % base.n_kv_head:
            overrides["n_kv_head"] = self.heads.value()  # plain multi-head attention then
        if base.d_ff is not None and self.width.value() != base.d_model:
            overrides["d_ff"] = None  # the preset's FFN width belongs to its own width
        return {k: v for k, v in overrides.items() if getattr(base, k) != v}

    def model_config(self, vocab_size: int | None = None) -> ModelConfig:
        """The planned model; raises ValueError when the shape is not valid."""
        return preset(
            self.base_preset(), vocab_size=vocab_size or self.vocab_size, **self.model_overrides()
        )

    def planned_tokens(self) -> int:
        """Tokens the run will train on: steps × batch × context."""
        return self.steps.value() * self.batch.value() * self.context.value()

    def config_fields(self) -> dict[str, Any]:
        """The TrainConfig fields this panel decides."""
        steps = self.steps.value()
        eval_every = min(self.eval_every.value(), steps)
        return {
            "preset": self.base_preset(),
            "model": self.model_overrides(),
            "steps": steps,
            "batch_size": self.batch.value(),
            "context": self.context.value(),
            "learning_rate": self.lr.value(),
            "min_learning_rate": self.lr.value() / 10,
            "warmup_steps": max(1, min(100, steps // 20)),
            # About 500 loss points per run: enough for a smooth curve, few enough events.
            "log_every": max(1, steps // 500),
            "eval_every": eval_every,
            "sample_every": eval_every * max(1, steps // eval_every // 5),
            "checkpoint_every": eval_every,
            "threads": trainer_threads(self.processes.value()),
            "strategy": self.strategy_choice(),
        }

    def strategy_choice(self) -> str:
        """How several processes share the model: "ddp" or "fsdp"."""
        return str(self.strategy.currentData())

    def set_run_config(self, path: Path | None) -> None:
        """The run shown (its config file): the command for several machines trains it."""
        self.run_config = path
        self._update_multinode()

    def _update_multinode(self, _index: int = 0) -> None:
        self.multinode.setText(
            multinode_command(
                self.run_config or NO_RUN_YET, NODES, self.processes.value(), RDZV_PLACEHOLDER,
                strategy=self.strategy_choice(),
            )
        )  # fmt: skip
        self.multinode.setCursorPosition(0)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._measure_timer.start()  # measured only while someone looks

    def set_corpus_tokens(self, tokens: int | None) -> None:
        """The chosen text holds about this many tokens (None: not known yet)."""
        self.corpus_tokens = tokens
        self._update_estimates()

    def set_corpus_text(self, paths: list[str], characters: int | None, kind: str) -> None:
        """The text the run will prepare (its files, characters) and the tokenizer kind: the
        time to prepare it is measured on it."""
        self.data_paths, self.corpus_chars, self.tokenizer_kind = list(paths), characters, kind
        self._update_estimates()

    def set_training(self, running: bool) -> None:
        """A run started (any measurement is killed: it would slow the run and be slowed by
        it) or ended (the plan is measured again when it rests)."""
        self.training = running
        if running:
            self._measure_timer.stop()
            self.measurer.stop()
        else:
            self._measure_timer.start()

    def _measure_key(self) -> tuple:
        """What the measured parts depend on."""
        return (self.base_preset(), tuple(sorted(self.model_overrides().items())),
                self.batch.value(), self.context.value(), self.vocab_size,
                trainer_threads(self.processes.value()), tuple(self.data_paths),
                self.tokenizer_kind)  # fmt: skip

    def measure(self) -> None:
        """Time the parts of the planned run (in a process of its own; the estimate follows).
        Any measurement still running for an earlier plan is killed first."""
        if not self.isVisible() or self.training:
            return  # measured when someone looks (the tab is shown again), between runs
        key = self._measure_key()
        if self.measured is not None and self.measured[0] == key:
            return
        if self.measurer.is_running() and self.measurer.key == key:
            return  # already on its way
        fields = {**self.config_fields(), "data": self.data_paths or ["(not read)"],
                  "tokenizer": self.tokenizer_kind if self.tokenizer_kind != "model" else "bpe",
                  "vocab_size": self.vocab_size}  # fmt: skip
        self.measurer.start(key, fields, trainer_threads(self.processes.value()))

    def _on_measured(self, key: tuple, parts: dict[str, Any], start: float) -> None:
        self.measured = (key, parts, start)
        self._update_estimates()

    def _on_measure_failed(self, _key: tuple, _message: str) -> None:
        pass  # it could not run: the rough guess stays

    def _time_line(self, parts: dict[str, Any], start: float, processes: int) -> str:
        """The run's time from its measured parts, and what it is made of."""
        fields = self.config_fields()
        e = estimate_run(parts, fields, start_seconds=start, corpus_chars=self.corpus_chars,
                         processes=processes)  # fmt: skip
        self.run_estimate = e
        steps = fields["steps"]
        made_of = [f"starting {format_duration(e.start)}"]
        if e.prepare:
            made_of.append(f"preparing the text {format_duration(e.prepare)}")
        made_of.append(f"{steps:,} steps {format_duration(e.steps)} "
                       f"({parts['seconds_per_step']:.3f} s each)")  # fmt: skip
        made_of.append(f"evaluations, samples and checkpoints "
                       f"{format_duration(e.evals + e.samples + e.checkpoints)}")  # fmt: skip
        one = ", with one process" if processes > 1 else ""
        return (f"Time: about {format_duration(e.total)} — " + ", ".join(made_of)
                + f" (measured on this machine{one})")  # fmt: skip

    def set_vocabulary(self, vocab_size: int) -> None:
        """The tokenizer's size changed: the embedding and head change with it."""
        self.vocab_size = max(1, vocab_size)
        self._update_estimates()

    # ----- reacting to edits ----------------------------------------------------------------

    def _on_preset_changed(self, _index: int = 0) -> None:
        name = str(self.preset.currentData())
        if name == CUSTOM:
            self._update_estimates()
            return
        self._base = name
        config = PRESETS[name]
        for box, value in (
            (self.layers, config.n_layer),
            (self.heads, config.n_head),
            (self.width, config.d_model),
            (self.context, config.context_length),
        ):
            box.blockSignals(True)  # one estimate for the whole preset, not four
            box.setValue(value)
            box.blockSignals(False)
        self._update_estimates()

    def _on_shape_edited(self, _value: int) -> None:
        base = PRESETS[self._base]
        shape = (self.layers.value(), self.heads.value(), self.width.value(), self.context.value())
        same = shape == (base.n_layer, base.n_head, base.d_model, base.context_length)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(self._base if same else CUSTOM))
        self.preset.blockSignals(False)
        self._update_estimates()

    def _on_budget_changed(self, _value: int) -> None:
        self._update_estimates()

    def _on_processes_changed(self, _value: int) -> None:
        self.device = None  # the peak depends on processes and threads
        self.strategy.setEnabled(self.processes.value() > 1)
        self._update_multinode()
        self._update_estimates()
        self.detect_device()

    def detect_device(self) -> None:
        """Find the device (and its peak) in the background; the estimate follows."""
        self._device_id += 1
        request, processes = self._device_id, self.processes.value()
        threads = trainer_threads(processes)
        run_in_background(
            lambda: detect_device(processes, threads),
            lambda result, error: self._on_device_detected(request, result, error),
            self,
        )

    def _on_device_detected(
        self, request: int, result: TrainingDevice | None, error: str | None
    ) -> None:
        if request == self._device_id and not error:
            self.device = result
            self._update_estimates()

    def _update_estimates(self) -> None:
        processes = self.processes.value()
        self.threads_label.setText(threads_note(processes))
        try:
            config = self.model_config()
        except ValueError as e:
            self.estimates.setText(f"Not a valid model: {str(e).split(': ', 1)[-1]}")
            self.plan_changed.emit(None)
            return
        params = config.parameter_count()
        per_token = config.flops_per_token(context=self.context.value())
        tokens = self.planned_tokens()
        compute = 3 * per_token * tokens  # forward + backward ≈ 3 forward passes
        weights = config.memory_bytes()["weights"]
        lines = [
            f"Parameters: {params:,} ({format_count(params)}), vocabulary {self.vocab_size:,}",
            f"Memory: {format_bytes(weights)} of float32 weights; about "
            f"{format_bytes(params * ADAM_BYTES_PER_PARAMETER)} to train "
            "(weights, gradients, Adam)",
            f"FLOPs per token (forward): {per_token:,.0f}",
            f"Planned: {tokens:,} tokens ({self.steps.value():,} steps × {self.batch.value()} × "
            f"{self.context.value()}) = {compute:.2e} FLOPs of training compute",
        ]
        if self.corpus_tokens:
            epochs = tokens / self.corpus_tokens
            passes = (
                f"{epochs:,.1f} passes" if epochs >= 1.05 else "less than one pass"
                if epochs < 0.95 else "one pass"
            )  # fmt: skip
            line = (
                f"Text: about {self.corpus_tokens:,} tokens, so the run makes {passes} over it "
                "(epochs)"
            )
            if epochs > MANY_EPOCHS:
                line += (
                    f". Over {MANY_EPOCHS} passes the model will learn this text by heart "
                    "(overfit): add text, or plan fewer steps"
                )
            lines.append(line)
        measured = self.measured
        self.run_estimate = None
        if measured is not None and measured[0] == self._measure_key():
            lines.append(self._time_line(measured[1], measured[2], processes))
        elif self.device is None:
            lines.append("Time: detecting the device…")
        else:
            utilization = ASSUMED_UTILIZATION[self.device.kind]
            seconds = compute / (self.device.peak_flops * utilization)
            lines.append(
                f"Time: about {format_duration(seconds)} on {self.device.label} (a rough "
                f"guess at {utilization:.0%} of its peak; measuring the run's parts…)"
            )
            if self.measurer.is_running() and self.measurer.key != self._measure_key():
                self.measurer.stop()  # measuring a plan that is no longer the plan
            self._measure_timer.start()
        self.estimates.setText("\n".join(lines))
        self.plan_changed.emit(config)
