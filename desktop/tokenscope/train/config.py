"""The training run's config: what to train on, which model, and how; JSON in and out.

A run folder holds the resolved config (`run.json`), so a run can be resumed or repeated
from its folder alone. Paths inside a config file are relative to that file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tokenscope.files import resource_path
from tokenscope.lm.config import PRESETS, ModelConfig, preset
from tokenscope.lm.probe import Probe  # a prompt and the continuation reported as training goes
from tokenscope.train import config_checks as checks

TokenizerKind = Literal["char", "bpe", "model"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Strategy = Literal["ddp", "fsdp"]
MAX_CONFIG_BYTES = 10 << 20


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs. Defaults suit a small model on a laptop CPU."""

    data: tuple[str, ...]  # files and folders of text
    out_dir: str  # the run folder
    # A corpus Tokenscope builds itself into the run folder ("default": the bundled model's).
    corpus_recipe: str | None = None
    # Tokenizer: "char", "bpe" (byte-level BPE trained on the corpus) or "model" (init_from's).
    tokenizer: TokenizerKind = "bpe"
    vocab_size: int = 2048  # for "bpe"
    # Model: a preset with overrides, or init_from a checkpoint / model name to fine-tune.
    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to override
    init_from: str | None = None
    # Optimisation.
    steps: int = 1000
    batch_size: int = 16  # sequences per optimizer step (global, over all processes)
    grad_accum: int = 1  # micro-batches per optimizer step
    context: int | None = None  # training sequence length (default: the model's context)
    learning_rate: float = 3e-3
    min_learning_rate: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    dropout: float = 0.0
    precision: Precision = "auto"
    device: str = "auto"
    # With several processes (torchrun): "ddp" keeps a whole model on every device, "fsdp"
    # shards parameters, gradients and optimizer state over them, for a model that does not
    # fit one device. The same losses either way; one process trains the same with both.
    strategy: Strategy = "ddp"
    threads: int | None = None  # CPU threads for torch; None: torch's default
    # torch.compile the training steps' forward and backward (opt-in: compiling takes seconds
    # to minutes first; a run where it fails warns and trains uncompiled).
    compile: bool = False
    seed: int = 1337
    val_fraction: float = 0.1
    # What to report, and when.
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    sample_every: int = 200
    sample_prompts: tuple[str, ...] = ("The",)
    sample_tokens: int = 48
    probes: tuple[Probe, ...] = ()
    checkpoint_every: int = 200
    keep_checkpoints: int = 2  # the last N, plus the best by validation loss
    max_bad_steps: int = 5  # NaN/inf losses in a row before the run fails
    name: str = "run"

    def __post_init__(self) -> None:
        # Lists from JSON or callers become tuples, so a config stays hashable and frozen.
        for name in ("data", "sample_prompts", "probes"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = checks.field_problems(self, sorted(PRESETS))
        problems += checks.probe_problems(self.probes)
        problems += self._relation_problems(shape=not problems)
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def _relation_problems(self, *, shape: bool) -> list[str]:
        """Problems between fields; the model's shape as a whole only when `shape` (every
        field alone is valid)."""
        problems = []
        if not self.data and not self.corpus_recipe:
            problems.append("data: name at least one file or folder of text")
        batch, accum = self.batch_size, self.grad_accum
        if checks.is_int(batch) and checks.is_int(accum) and accum >= 1 and batch % accum:
            problems.append(
                f"batch_size {self.batch_size} must be a multiple of grad_accum {self.grad_accum}"
            )
        if self.tokenizer == "model" and not self.init_from:
            problems.append('tokenizer "model" needs init_from (the model whose tokenizer to use)')
        if shape and not problems:
            try:
                self.model_config(self.vocab_size)  # the shape as a whole (heads divide width...)
            except ValueError as e:
                problems.append(f"model: {str(e).removeprefix('invalid model config: ')}")
        return problems

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The model to build from scratch for a tokenizer of `vocab_size` tokens."""
        overrides = {"dropout": self.dropout, **self.model, "vocab_size": vocab_size}
        return preset(self.preset, **overrides)

    # ----- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["sample_prompts"] = list(self.sample_prompts)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> TrainConfig:
        """A config from JSON values; every field is checked (ValueError names the field)."""
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a JSON object (got {type(data).__name__})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        if "out_dir" not in data:
            raise ValueError("invalid training config: out_dir is missing (the run folder)")
        d = dict(data)
        paths = d.get("data", ())
        if isinstance(paths, str):
            paths = [paths]
        if isinstance(paths, (list, tuple)):
            paths = tuple(_resolve(p, base_dir) for p in paths)
        d["data"] = paths
        if "out_dir" in d:
            d["out_dir"] = _resolve(d["out_dir"], base_dir)
        prompts = d.get("sample_prompts", cls.sample_prompts)
        d["sample_prompts"] = tuple(prompts) if isinstance(prompts, (list, tuple)) else prompts
        probes = d.get("probes", ())
        if isinstance(probes, (list, tuple)) and not checks.probe_problems(probes):
            probes = tuple(p if isinstance(p, Probe) else Probe(**p) for p in probes)
        d["probes"] = probes  # anything else is reported by the checks, naming the field
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        from tokenscope.files import FileReadError, load_json

        path = Path(path)
        try:
            # Bounded and regular files only: a FIFO given as --config would block open().
            data = load_json(path, MAX_CONFIG_BYTES, "a training config (JSON)")
        except FileReadError as e:
            raise ValueError(f"cannot read the training config: {e}") from None
        return cls.from_dict(data, base_dir=path.parent)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _resolve(path: Any, base_dir: Path | None) -> Any:
    """A path relative to the config file's folder made absolute (non-text is left for the
    checks to report)."""
    if base_dir is None or not isinstance(path, str) or not path or Path(path).is_absolute():
        return path
    return str((base_dir / path).resolve())


def recipe_path(name: str) -> Path:
    """A named recipe shipped in resources/recipes (e.g. "default": the bundled model)."""
    path = resource_path("recipes", f"{name}.json")
    if not path.is_file():
        raise ValueError(f"no recipe named {name!r} (looked for {path})")
    return path
