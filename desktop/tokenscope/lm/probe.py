"""A probe: a prompt and the continuation whose probability is measured.

One record for every place that measures one: a training run reports its probes as it
trains (tokenscope.train), the Scale tab and `tokenscope scale` measure one across models and
checkpoints (tokenscope.lm.scale).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    """P(continuation | prompt), over all of the continuation's tokens."""

    prompt: str
    continuation: str  # mind the space: " Jakarta"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.continuation, str):
            raise ValueError("a probe is a prompt and a continuation, both text")
        if not self.continuation:
            raise ValueError(
                "the probe's answer is empty (the continuation whose probability is measured)"
            )

    def key(self) -> str:
        """A short stable digest (results cached under it keep their name across versions:
        the continuation was once called the answer)."""
        text = json.dumps({"answer": self.continuation, "prompt": self.prompt}, sort_keys=True,
                          ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
