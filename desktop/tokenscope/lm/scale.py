"""One probe across many models: does the answer's probability grow with the model's size?

    probe = Probe("The capital of Indonesia is", " Jakarta")
    for point in run_probe(["builtin", "smollm2-135m", "gemma3-270m"], probe):
        print(point.model, point.parameters, point.probability, point.rank)
    sweeps = run_sweeps(["builtin", "smollm2-135m"], load_prompt("capitals"))  # 0..k shots each

A run's checkpoints, against the training tokens each had seen, are measured by
tokenscope.train.probe_runs (training_curve), with the same cache.

Each (model, probe) result is kept in a cache (`tokenscope.paths.scale_cache_dir()`), keyed by
the probe and by the model as it is on disk (its path, size and modification time), so asking
again costs nothing and a retrained model is measured anew. Models are loaded one at a time
and let go; a model on a server is asked over HTTP (its parameter count where it says).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from tokenscope.lm.backend import ModelBackend, is_server
from tokenscope.lm.backend import open_model as _open
from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.fewshot import FewShotPrompt, SweepPoint, iter_sweep, score_answer
from tokenscope.lm.probe import Probe

__all__ = ["Probe", "ScaleICL", "ScalePoint", "ScaleSweep", "falls_with_size", "measure_icl",
           "measure_probe", "measure_sweep", "run_probe", "run_sweeps", "sweep_end"]  # fmt: skip

CACHE_VERSION = 1


@dataclass(frozen=True)
class ScalePoint:
    """One model's answer to a probe."""

    model: str  # the target as asked for (a name, a path or a server)
    name: str  # the model's own name
    parameters: int  # 0 where a server does not say
    probability: float  # P(answer | prompt), over all of its tokens
    rank: int | None  # of the answer's first token (1: the model's most likely next token)
    top_prediction: str
    top_probability: float
    cached: bool = False
    upper_bound: bool = False  # a server's top-k list: P is at most this
    rank_above: int = 0  # rank None: below this many listed tokens


def cache_dir() -> Path:
    from tokenscope.paths import scale_cache_dir

    return scale_cache_dir()


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def model_key(target: str) -> str:
    """The model as it is now: a file or folder by its path, size and modification time (a
    retrained checkpoint gets a new key); a name or a server by its name."""
    path = Path(target).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files[:200]]
        return _digest({"path": str(path.resolve()), "files": stamp})
    if is_server(target):
        return _digest({"server": target})
    from tokenscope.lm.registry import KNOWN_MODELS, known_model_path

    if target == "builtin":  # the bundled model as it is on disk (a new version retrains it)
        from tokenscope.lm.loading import builtin_model_path

        return model_key(str(builtin_model_path()))
    known = known_model_path(target) if target in KNOWN_MODELS else None
    if known is not None:
        return model_key(str(known))
    from tokenscope import __version__

    return _digest({"name": target, "version": __version__})


def _cacheable(target: str) -> bool:
    """A server may serve another model at the same address tomorrow: its answers are
    measured each time."""
    return not is_server(target)


def _name(model: ModelBackend, target: str) -> str:
    return model.name or Path(target).name or target


#: a cached probe is a few hundred bytes, a sweep a few hundred per point
MAX_CACHE_BYTES = 4 << 20
#: a probability computed in float32 may come out a hair above 1
P_MAX = 1.001


def _read(path: Path) -> dict[str, Any] | None:
    from tokenscope.files import FileReadError, load_json

    try:
        data = load_json(path, MAX_CACHE_BYTES, "a cached scale result")
    except FileReadError:
        # Absent, damaged, or not a file at all (a FIFO there would block a plain open):
        # measured again, and the new result replaces whatever was there.
        return None
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else None


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_probability(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= P_MAX
    )


def _is_rank(value: Any) -> bool:
    return value is None or (_is_count(value) and value >= 1)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool)


# What each field of a cached record may hold: a cache file is read back, not trusted (a
# string for a number, NaN or a list for a record would otherwise reach a chart or a format).
_Check = Callable[[Any], bool]
_POINT_FIELDS: dict[str, _Check] = {
    "model": _is_text, "name": _is_text, "parameters": _is_count, "probability": _is_probability,
    "rank": _is_rank, "top_prediction": _is_text, "top_probability": _is_probability,
    "cached": _is_flag, "upper_bound": _is_flag, "rank_above": _is_count,
}  # fmt: skip
_SWEEP_POINT_FIELDS: dict[str, _Check] = {
    "shots": _is_count, "order": _is_count, "probability": _is_probability, "rank": _is_rank,
    "top_prediction": _is_text, "top_probability": _is_probability,
    "normalised": lambda v: v is None or _is_probability(v), "dropped_tokens": _is_count,
    "upper_bound": _is_flag, "rank_above": _is_count,
}  # fmt: skip


def _record(cls: Callable[..., Any], values: Any, fields: Mapping[str, _Check]) -> Any:
    """`cls(**values)` when `values` is an object whose every field holds what it should;
    None otherwise (another version's record or a damaged one: measured again)."""
    if not isinstance(values, dict) or not set(values) <= set(fields):
        return None
    if not all(fields[key](value) for key, value in values.items()):
        return None
    try:
        return cls(**values)
    except TypeError:  # a field missing
        return None


def _cached_point(got: dict[str, Any]) -> ScalePoint | None:
    point = _record(ScalePoint, got.get("point"), _POINT_FIELDS)
    return point if isinstance(point, ScalePoint) else None


def _cached_sweep(target: str, got: dict[str, Any]) -> ScaleSweep | None:
    raw, name, parameters = got.get("points"), got.get("name"), got.get("parameters")
    if not (isinstance(raw, list) and isinstance(name, str) and _is_count(parameters)):
        return None
    points = [_record(SweepPoint, p, _SWEEP_POINT_FIELDS) for p in raw]
    if any(p is None for p in points):
        return None
    return ScaleSweep(target, name, parameters, tuple(points), cached=True)


def _write(path: Path, data: dict[str, Any]) -> None:
    from tokenscope.files import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": CACHE_VERSION, **data}, ensure_ascii=False))
    except OSError:
        pass  # a cache: the result stands without it


def measure_probe(
    target: str,
    probe: Probe,
    *,
    use_cache: bool = True,
    open_model: Callable[[str], ModelBackend] | None = None,
    cancel: CancelToken | None = None,
) -> ScalePoint:
    """The probe on one model: from the cache when it holds this model as it is on disk,
    else measured (the model opened with `open_model`, by default tokenscope.lm.backend's)
    and kept."""
    path = cache_dir() / model_key(target) / f"probe-{probe.key()}.json"
    got = _read(path) if use_cache and _cacheable(target) else None
    cached = _cached_point(got) if got is not None else None
    if cached is not None:
        return dataclasses.replace(cached, model=target, cached=True)
    model = (open_model or _open)(target)
    score = score_answer(model, probe.prompt, probe.continuation, cancel=cancel)
    point = ScalePoint(
        model=target,
        name=_name(model, target),
        parameters=model.facts().parameters,
        probability=score.probability,
        rank=score.first_token_rank,
        top_prediction=score.top_prediction,
        top_probability=score.top_probability,
        upper_bound=score.upper_bound,
        rank_above=score.rank_above,
    )
    del model
    _write(path, {"point": dataclasses.asdict(point)})
    return point


def iter_probe(
    targets: Sequence[str],
    probe: Probe,
    *,
    use_cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[ScalePoint]:
    """The probe on each model in turn (cached results first-hand); `progress(target, done,
    total)` before each model, and it may raise to stop."""
    for n, target in enumerate(targets):
        if progress is not None:
            progress(target, n, len(targets))
        yield measure_probe(target, probe, use_cache=use_cache)


def run_probe(targets: Sequence[str], probe: Probe, **options: Any) -> list[ScalePoint]:
    return list(iter_probe(targets, probe, **options))


@dataclass(frozen=True)
class ScaleSweep:
    """One model's few-shot sweep (P(expected) for 0..k shots)."""

    model: str
    name: str
    parameters: int
    points: tuple[SweepPoint, ...]
    cached: bool = False


def measure_sweep(
    target: str,
    prompt: FewShotPrompt,
    *,
    max_shots: int | None = None,
    use_cache: bool = True,
    open_model: Callable[[str], ModelBackend] | None = None,
    on_point: Callable[[SweepPoint], None] | None = None,
    cancel: CancelToken | None = None,
) -> ScaleSweep:
    """The 0..k sweep of a few-shot prompt on one model, cached like a probe; `on_point`
    is called after each measured point (it may raise to stop)."""
    key = _digest({"prompt": prompt.to_dict(), "max_shots": max_shots})
    path = cache_dir() / model_key(target) / f"sweep-{key}.json"
    got = _read(path) if use_cache and _cacheable(target) else None
    cached = _cached_sweep(target, got) if got is not None else None
    if cached is not None:
        return cached
    model = (open_model or _open)(target)
    points = []
    for point in iter_sweep(model, prompt, max_shots=max_shots, cancel=cancel):
        points.append(point)
        if on_point is not None:
            on_point(point)
    sweep = ScaleSweep(target, _name(model, target), model.facts().parameters, tuple(points))
    del model
    _write(path, {"name": sweep.name, "parameters": sweep.parameters,
                  "points": [dataclasses.asdict(p) for p in points]})  # fmt: skip
    return sweep


def run_sweeps(
    targets: Sequence[str],
    prompt: FewShotPrompt,
    *,
    max_shots: int | None = None,
    use_cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ScaleSweep]:
    """The 0..k sweep of a few-shot prompt on every model (one curve each), cached."""
    out = []
    for n, target in enumerate(targets):
        if progress is not None:
            progress(target, n, len(targets))
        out.append(measure_sweep(target, prompt, max_shots=max_shots, use_cache=use_cache))
    return out


# ----- in-context learning across models ------------------------------------------------------


@dataclass(frozen=True)
class ScaleICL:
    """One model's in-context learning on a text (tokenscope.lm.icl.report)."""

    model: str
    name: str
    parameters: int
    icl_score: float  # late minus early loss, nats: negative learns from context
    induction_max: float
    previous_token_max: float
    strongest_head: tuple[int, int]
    icl_without_strongest: float
    cached: bool = False


def _is_score(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_head(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_count(v) for v in value)


_ICL_FIELDS: dict[str, _Check] = {
    "model": _is_text, "name": _is_text, "parameters": _is_count, "icl_score": _is_score,
    "induction_max": _is_probability, "previous_token_max": _is_probability,
    "strongest_head": _is_head, "icl_without_strongest": _is_score, "cached": _is_flag,
}  # fmt: skip


def measure_icl(
    target: str,
    text: str,
    *,
    use_cache: bool = True,
    open_model: Callable[[str], ModelBackend] | None = None,
) -> ScaleICL:
    """The ICL score and induction heads of one model on `text`, cached like a probe. A
    model without its forward pass here (a server) raises ValueError saying so."""
    from tokenscope.lm.backend import require_internals
    from tokenscope.lm.icl import WINDOWS, report

    key = _digest({"text": text, "windows": WINDOWS})
    path = cache_dir() / model_key(target) / f"icl-{key}.json"
    got = _read(path) if use_cache and _cacheable(target) else None
    cached = _record(ScaleICL, got.get("icl"), _ICL_FIELDS) if got is not None else None
    if isinstance(cached, ScaleICL):  # (the head comes back from JSON as a list)
        head = (cached.strongest_head[0], cached.strongest_head[1])
        return dataclasses.replace(cached, model=target, cached=True, strongest_head=head)
    backend = (open_model or _open)(target)
    r = report(require_internals(backend, "the in-context learning score"), text)
    result = ScaleICL(
        model=target, name=_name(backend, target), parameters=backend.facts().parameters,
        icl_score=r.icl_score, induction_max=r.heads.induction_max,
        previous_token_max=r.heads.previous_token_max, strongest_head=r.strongest_head,
        icl_without_strongest=r.icl_without_strongest,
    )  # fmt: skip
    del backend
    record = dataclasses.asdict(result)
    record["strongest_head"] = list(result.strongest_head)
    _write(path, {"icl": record})
    return result


def sweep_end(sweep: ScaleSweep) -> ScalePoint:
    """A sweep's last point (the most examples) as a point of the size chart."""
    last = sweep.points[-1]
    return ScalePoint(
        model=sweep.model,
        name=sweep.name,
        parameters=sweep.parameters,
        probability=last.probability,
        rank=last.rank,
        top_prediction=last.top_prediction,
        top_probability=last.top_probability,
        cached=sweep.cached,
        upper_bound=last.upper_bound,
        rank_above=last.rank_above,
    )


#: a fall in P with size worth explaining: the smaller model at least this sure...
FALL_FROM = 0.3
#: ...and the larger one below this share of it, by at least FALL_BY
FALL_SHARE = 0.75
FALL_BY = 0.1


def _count(n: int) -> str:
    from tokenscope.units import format_count

    return format_count(n)


def falls_with_size(points: Sequence[ScalePoint], shots: int | None = None) -> str:
    """Plain words for a probe whose P(answer) falls from a smaller model to a larger one
    (the largest such fall among `points`), which would otherwise read as "bigger models know
    less"; "" when P does not fall with size. `shots`: the points are a few-shot task's
    probabilities with that many examples."""
    sized = sorted((p for p in points if p.parameters > 0), key=lambda p: p.parameters)
    fall: tuple[float, ScalePoint, ScalePoint] | None = None
    for i, small in enumerate(sized):
        for big in sized[i + 1 :]:
            if big.parameters <= small.parameters or small.probability < FALL_FROM:
                continue
            drop = small.probability - big.probability
            fell = big.probability < FALL_SHARE * small.probability and drop >= FALL_BY
            if fell and (fall is None or drop > fall[0]):
                fall = (drop, small, big)
    if fall is None:
        return ""
    _drop, small, big = fall
    where = f" (with {shots} examples)" if shots is not None else ""
    text = (
        f"P falls with size here{where}: {small.name} ({_count(small.parameters)}) "
        f"{small.probability:.3f}, {big.name} ({_count(big.parameters)}) "
        f"{big.probability:.3f}. Not because bigger models know less: a small model trained "
        "on this very fact, or this very kind of task, again and again puts nearly all its "
        "probability on it. That is memory, not ability"
    )
    if small.model == "builtin":
        text += (
            " (the bundled model's 2.5 MB of training text is full of such tables and of "
            "lists in invented languages)"
        )
    text += (
        ". A bigger model, trained on far more varied text, spreads its probability over "
        f"many plausible continuations ({big.name}'s top guess: {big.top_prediction!r} "
        f"{big.top_probability:.3f})."
    )
    if shots is None:
        text += (
            " Size shows where memory cannot help: a task the prompt itself defines (Few-shot "
            "task, invented-language)."
        )
    else:
        text += " Compare the larger models with one another: there size shows."
    return text
