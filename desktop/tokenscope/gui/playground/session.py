"""Playground sessions: branches of generated text, and their JSON file.

A session file keeps the prompt, the knobs, the model, and every branch with the top-k
distribution captured at each token, so opening it shows exactly what was seen.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any, overload

from tokenscope.files import FileReadError, atomic_write_text, load_json

if TYPE_CHECKING:
    from tokenscope.lm.tokens import GenerationStep, TokenProbability

# Version 2: steps in the engine's one token vocabulary (display, TokenProbability lists with
# both probabilities, full_vocabulary); version 1 files still open.
FORMAT, VERSION = "tokenscope-session", 2


@dataclass
class Branch:
    """One line of generated text; a new branch starts where an alternative was chosen."""

    prompt: str
    prompt_ids: list[int] = field(default_factory=list)
    steps: list[GenerationStep] = field(default_factory=list)
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
    if len(fields.get("prompt", "")) > MAX_TEXT:
        raise ValueError(f"the prompt is longer than a session keeps ({MAX_TEXT:,} characters)")
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
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False))


#: limits of what a session file may hold; a real session is far smaller
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_BRANCHES = 10_000
MAX_STEPS = 1_000_000  # in all branches together
MAX_ALTERNATIVES = 1_000
MAX_TEXT = 20_000_000  # characters in the prompt (the engine takes no more in one call)
MAX_TOKEN_TEXT = 10_000  # characters of one token (real ones have a few dozen at most)
MAX_TOKEN_ID = 2**31 - 1
#: a probability computed in float32 and renormalised can come out a hair above 1
P_MAX = 1.001


class SessionError(ValueError):
    """A file that is not a readable Tokenscope session; the message says where and what."""


def _expect(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise SessionError(f"{where} should be {what}")


@overload
def _int(d: dict, key: str, where: str, low: int, high: int) -> int: ...
@overload
def _int(d: dict, key: str, where: str, low: int, high: int, optional: bool) -> int | None: ...
def _int(d: dict, key: str, where: str, low: int, high: int, optional: bool = False) -> int | None:
    value = d.get(key)
    if optional and value is None:
        return None
    _expect(
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
        f"{where}.{key}",
        f"a whole number from {low} to {high}" + (" or null" if optional else ""),
    )
    return value


def _float(d: dict, key: str, where: str, low: float, high: float) -> float:
    value: Any = d.get(key)  # JSON, checked here
    _expect(
        isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high,
        f"{where}.{key}",
        f"a number from {low:g} to {high:g}",
    )
    return float(value)


def _str(
    d: dict, key: str, where: str, max_chars: int = MAX_TEXT, default: str | EllipsisType = ...
) -> str:
    value = d.get(key, default)
    _expect(
        isinstance(value, str) and len(value) <= max_chars,
        f"{where}.{key}",
        f"text of at most {max_chars:,} characters",
    )
    return value


def _bool(d: dict, key: str, where: str, default: bool = False) -> bool:
    value = d.get(key, default)
    _expect(isinstance(value, bool), f"{where}.{key}", "true or false")
    return value


def _alternatives(value: Any, where: str, version: int) -> tuple[TokenProbability, ...]:
    """A step's alternatives as TokenProbability records. Version 1 kept one probability per
    alternative (the raw one in top_raw, the sampled one in top_sampled): `probability`
    holds it; _step puts each in its place."""
    from tokenscope.lm.tokens import TokenProbability

    _expect(
        isinstance(value, list) and len(value) <= MAX_ALTERNATIVES,
        where,
        f"a list of at most {MAX_ALTERNATIVES} alternatives",
    )
    out = []
    for i, a in enumerate(value):
        at = f"{where}[{i}]"
        _expect(isinstance(a, dict), at, "an object")
        p = _float(a, "probability", at, 0.0, P_MAX)
        sampled = p if version == 1 else _float(a, "sampled_probability", at, 0.0, P_MAX)
        out.append(
            TokenProbability(
                _int(a, "token_id", at, 0, MAX_TOKEN_ID),
                _str(a, "text", at, MAX_TOKEN_TEXT, default=""),
                _str(a, "display", at, 10_000),
                p,
                sampled,
            )
        )
    return tuple(out)


def _step(d: Any, where: str, version: int) -> GenerationStep:
    from tokenscope.lm.tokens import GenerationStep

    _expect(isinstance(d, dict), where, "an object")
    top_raw = _alternatives(d.get("top_raw"), f"{where}.top_raw", version)
    top_sampled = _alternatives(d.get("top_sampled"), f"{where}.top_sampled", version)
    if version == 1:
        top_raw, top_sampled, full = _from_version_1(top_raw, top_sampled)
    else:
        full = _bool(d, "full_vocabulary", where, default=True)
    return GenerationStep(
        index=_int(d, "index", where, 0, MAX_STEPS),
        token_id=_int(d, "token_id", where, 0, MAX_TOKEN_ID),
        display=_str(d, "piece" if version == 1 else "display", where, MAX_TOKEN_TEXT),
        text=_str(d, "text", where, MAX_TOKEN_TEXT),
        probability=_float(d, "probability", where, 0.0, P_MAX),
        sampled_probability=_float(d, "sampled_probability", where, 0.0, P_MAX),
        top_raw=top_raw,
        top_sampled=top_sampled,
        entropy=_float(d, "entropy", where, 0.0, 64.0),
        elapsed=_float(d, "elapsed", where, 0.0, 1e9),
        context_shifted=_bool(d, "context_shifted", where),
        is_eos=_bool(d, "is_eos", where),
        removed_mass=_float(d, "removed_mass", where, 0.0, P_MAX) if "removed_mass" in d else 0.0,
        full_vocabulary=full,
    )


def _from_version_1(
    raw: tuple[TokenProbability, ...], sampled: tuple[TokenProbability, ...]
) -> tuple[tuple[TokenProbability, ...], tuple[TokenProbability, ...], bool]:
    """Version 1's lists, each completed with the other's probabilities; its alternatives
    carried their text only where a server had listed them (a top-k list, not the whole
    vocabulary)."""
    import dataclasses

    raw_p = {a.token_id: a.probability for a in raw}
    sampled_p = {a.token_id: a.probability for a in sampled}
    full = not any(a.text for a in raw)
    raw = tuple(dataclasses.replace(a, sampled_probability=sampled_p.get(a.token_id, 0.0))
                for a in raw)  # fmt: skip
    sampled = tuple(
        dataclasses.replace(a, probability=raw_p.get(a.token_id, 0.0), sampled_probability=p)
        for a, p in ((a, a.probability) for a in sampled)
    )
    return raw, sampled, full


def read_session(path: str | Path) -> tuple[dict[str, Any], list[Branch]]:
    """The fields and branches of a session file.

    The whole file is checked before anything is shown: SessionError (a ValueError) names the
    first thing wrong ("branches[2].steps[5].text should be text ...") or why the file cannot
    be read at all. Blocking, and seconds for a large file: call it off the GUI thread."""
    path = Path(path)
    try:
        # A FIFO, a folder or /dev/zero at the path, a file too large, JSON nested too deeply:
        # each one line naming the file.
        data = load_json(path, MAX_FILE_BYTES, "a Tokenscope session (JSON)")
    except FileReadError as e:
        raise SessionError(str(e)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError(f"{path} is not a Tokenscope session file")
    version: Any = data.get("version")  # JSON, checked here
    _expect(version in (1, VERSION), "version", f"1 or {VERSION} (a newer Tokenscope made it?)")
    _str(data, "prompt", "session")
    _str(data, "watch", "session", 10_000, default="")
    _str(data, "model", "session", 10_000, default="")
    sampling = data.get("sampling", {})
    _expect(isinstance(sampling, dict), "session.sampling", "an object of knob values")
    current = data.get("current", -1)
    _expect(
        isinstance(current, int) and not isinstance(current, bool) and current >= -1,
        "session.current",
        "a branch number (or -1)",
    )
    raw_branches: Any = data.get("branches")  # JSON, checked here
    _expect(
        isinstance(raw_branches, list) and len(raw_branches) <= MAX_BRANCHES,
        "session.branches",
        f"a list of at most {MAX_BRANCHES:,} branches",
    )
    branches, steps_seen = [], 0
    for i, b in enumerate(raw_branches):
        at = f"branches[{i}]"
        _expect(isinstance(b, dict), at, "an object")
        ids = b.get("prompt_ids", [])
        _expect(
            isinstance(ids, list)
            and len(ids) <= MAX_TEXT
            and all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_TOKEN_ID
                for t in ids
            ),
            f"{at}.prompt_ids",
            "a list of token ids",
        )
        raw_steps = b.get("steps", [])
        _expect(isinstance(raw_steps, list), f"{at}.steps", "a list")
        steps_seen += len(raw_steps)
        _expect(steps_seen <= MAX_STEPS, "session", f"at most {MAX_STEPS:,} steps in all")
        parent = _int(b, "parent", at, 0, max(0, i - 1), optional=True)
        fork_at = _int(b, "fork_at", at, 0, MAX_STEPS, optional=True)
        branches.append(
            Branch(
                _str(b, "prompt", at),
                list(ids),
                [_step(s, f"{at}.steps[{j}]", version) for j, s in enumerate(raw_steps)],
                parent if i > 0 else None,
                fork_at,
                _str(b, "model", at, 10_000, default="") or str(data.get("model") or ""),
                _int(b, "seed", at, 0, 2**63 - 1, optional=True),
            )
        )
    return data, branches
