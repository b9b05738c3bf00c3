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
from tokenscope.lm.config import ModelConfig, preset

TokenizerKind = Literal["char", "bpe", "model"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class Probe:
    """A prompt and a continuation whose probability is reported as training goes on."""

    prompt: str
    continuation: str


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
    threads: int | None = None  # CPU threads for torch; None: torch's default
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
        problems = []
        if not self.data and not self.corpus_recipe:
            problems.append("data: name at least one file or folder of text")
        if self.corpus_recipe not in (None, "default"):
            problems.append(f"unknown corpus_recipe {self.corpus_recipe!r} (known: default)")
        if self.steps < 1:
            problems.append(f"steps must be >= 1 (got {self.steps})")
        if self.batch_size < 1 or self.grad_accum < 1:
            problems.append("batch_size and grad_accum must be >= 1")
        if self.batch_size % self.grad_accum:
            problems.append(
                f"batch_size {self.batch_size} must be a multiple of grad_accum {self.grad_accum}"
            )
        if self.tokenizer == "model" and not self.init_from:
            problems.append('tokenizer "model" needs init_from (the model whose tokenizer to use)')
        if self.tokenizer not in ("char", "bpe", "model"):
            problems.append(f"tokenizer must be char, bpe or model (got {self.tokenizer!r})")
        if not 0.0 < self.val_fraction < 0.5:
            problems.append(f"val_fraction must be in (0, 0.5) (got {self.val_fraction})")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        d = dict(data)
        paths = d.get("data", ())
        if isinstance(paths, str):
            paths = [paths]
        if base_dir is not None:
            paths = [
                str((base_dir / p).resolve()) if not Path(p).is_absolute() else p for p in paths
            ]
            if "out_dir" in d and not Path(d["out_dir"]).is_absolute():
                d["out_dir"] = str((base_dir / d["out_dir"]).resolve())
        d["data"] = tuple(paths)
        d["sample_prompts"] = tuple(d.get("sample_prompts", cls.sample_prompts))
        d["probes"] = tuple(p if isinstance(p, Probe) else Probe(**p) for p in d.get("probes", ()))
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"no training config at {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(data, base_dir=path.parent)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def recipe_path(name: str) -> Path:
    """A named recipe shipped in resources/recipes (e.g. "default": the bundled model)."""
    path = resource_path("recipes", f"{name}.json")
    if not path.is_file():
        raise ValueError(f"no recipe named {name!r} (looked for {path})")
    return path
