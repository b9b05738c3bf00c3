"""Playground sessions: branches of generated text, and their JSON file.

A session file keeps the prompt, the knobs, the model, and every branch with the top-k
distribution captured at each token, so opening it shows exactly what was seen.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT, VERSION = "tokenscope-session", 1


@dataclass
class Branch:
    """One line of generated text; a new branch starts where an alternative was chosen."""

    prompt: str
    prompt_ids: list[int] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)  # GenerationStep records
    parent: int | None = None
    fork_at: int | None = None
    model: str = ""  # the model that generated it: only that model can continue it
    seed: int | None = None  # the sampling seed of its first tokens: draw them again with it

    def label(self, index: int, current_model: str = "") -> str:
        """'#2: 12 tokens from #1 at token 3', naming the model when it is not the current one."""
        n = len(self.steps)
        text = f"#{index + 1}: {n} token{'s' if n != 1 else ''}"
        if self.parent is not None and self.fork_at is not None:
            text += f" from #{self.parent + 1} at token {self.fork_at + 1}"
        if self.seed is not None:
            text += f" · seed {self.seed}"
        if self.model and current_model and self.model != current_model:
            text += f" · {Path(self.model).name or self.model}"
        return text


def write_session(path: str | Path, fields: dict[str, Any], branches: list[Branch]) -> None:
    """Save `fields` (prompt, watch, sampling, model, current) and the branches as JSON."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        **fields,
        "branches": [
            {
                "prompt": b.prompt,
                "prompt_ids": b.prompt_ids,
                "parent": b.parent,
                "fork_at": b.fork_at,
                "model": b.model,
                "seed": b.seed,
                "steps": [dataclasses.asdict(s) for s in b.steps],
            }
            for b in branches
        ],
    }
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def read_session(path: str | Path) -> tuple[dict[str, Any], list[Branch]]:
    """The fields and branches of a session file; ValueError if it is not one."""
    from tokenscope.lm.generation import Alternative, GenerationStep

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Tokenscope session file")

    def step(d: dict) -> GenerationStep:
        d = dict(d)
        d["top_raw"] = tuple(Alternative(**a) for a in d["top_raw"])
        d["top_sampled"] = tuple(Alternative(**a) for a in d["top_sampled"])
        return GenerationStep(**d)

    branches = [
        Branch(
            b["prompt"],
            list(b["prompt_ids"]),
            [step(s) for s in b["steps"]],
            b.get("parent"),
            b.get("fork_at"),
            str(b.get("model") or data.get("model") or ""),
            b.get("seed"),
        )
        for b in data["branches"]
    ]
    return data, branches
