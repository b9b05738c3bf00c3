"""The course's lessons: JSON files in resources/course/ (and the data folder's course/), checked.

    lessons, problems = load_lessons()    # bundled first, then a teacher's own, by file name

A lesson is a title, a paragraph, what "Show me" sets up in the window (`show`), the sentence
to notice (`notice`) and the checks that test that sentence against what the model shows
(`checks`). Everything is checked when the file is read: an unknown field, a wrong type, a
tab, preset or check kind that does not exist is one line naming the file and the field, so
a teacher's typo is found at once, not when a learner presses "Show me". The format is
documented in docs/course.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenscope.files import FileReadError, load_json, resource_path

MAX_LESSON_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4000
MAX_LESSONS = 100

TABS = ("playground", "fewshot", "inside", "scale", "training", "models")

#: what each part of `show` may hold: field -> type, or a tuple of the allowed words
SHOW_FIELDS: dict[str, dict[str, Any]] = {
    "playground": {"prompt": str, "watch": str, "sampling": dict},
    "fewshot": {"preset": str},
    "inside": {
        "prompt": str,
        "view": ("lens", "attention", "surprisal"),
        "layer": int,
        "induction": bool,
    },
    "scale": {
        "mode": ("probe", "task"),
        "prompt": str,
        "answer": str,
        "task": str,
        "max_shots": int,
        "chart": ("size", "training", "sweep"),
        "run": bool,
    },
    "training": {
        "preset": str,
        "steps": int,
        "batch": int,
        "context": int,
        "tokenizer": ("char", "bpe", "model"),
        "corpus": ("default",),
        "recipe": str,  # a ready-made run of "Start from" (e.g. "induction")
        "details": ("notes", "samples", "log", "runs", "ladder", "icl"),
    },
}

#: each check kind and the parameters it takes (see tokenscope.gui.course.checks)
CHECK_FIELDS: dict[str, dict[str, Any]] = {
    "top_token": {"tokens": list, "min_probability": float},
    "prompt_tokens": {"split_word": str},
    "temperature": {},
    "baselines": {},
    "reference_models": {"min_decades": float},
    "training_compute": {},
    "ladder_fit": {},
    "probe_by_size": {"memorised_by": str, "min_probability": float},
    "fewshot_by_size": {"exclude": list, "min_probability": float},
    "lens": {},
    "induction": {"min_score": float},
    "icl_transition": {"min_fall": float},
}


class LessonError(ValueError):
    """What is wrong with a lesson file (one line naming the file and the field)."""


@dataclass(frozen=True)
class Lesson:
    key: str  # the file's name without .json: remembered in the settings
    title: str
    text: str
    notice: str
    show: dict[str, Any] = field(default_factory=dict)
    checks: tuple[dict[str, Any], ...] = ()
    path: str = ""


def bundled_folder() -> Path:
    return resource_path("course")


def teacher_folder() -> Path:
    """Lessons a teacher adds without touching the installation: DATA/course/*.json."""
    from tokenscope.paths import data_dir

    return data_dir() / "course"


def _kind(value: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return isinstance(value, str) and value in expected
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    if isinstance(expected, tuple):
        return "one of " + ", ".join(repr(v) for v in expected)
    return {
        str: "text",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "an object",
    }[expected]


def _fields(where: str, value: Any, allowed: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LessonError(f"{where}: {name} should be an object")
    for key, item in value.items():
        if key not in allowed:
            raise LessonError(
                f"{where}: {name} has an unknown field {key!r} (known: {', '.join(allowed)})"
            )
        if not _kind(item, allowed[key]):
            raise LessonError(f"{where}: {name}.{key} should be {_describe(allowed[key])}")
    return value


def _text(where: str, data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{where}: {key!r} is missing or empty (it should be text)")
    if len(value) > limit:
        raise LessonError(f"{where}: {key!r} is longer than {limit:,} characters")
    return value.strip()


def _check_show(where: str, show: Any) -> dict[str, Any]:
    allowed = {"model": str, "tab": TABS, **{k: dict for k in SHOW_FIELDS}}
    _fields(where, show, allowed, "show")
    for part, fields in SHOW_FIELDS.items():
        if part in show:
            _fields(where, show[part], fields, f"show.{part}")
    if "sampling" in show.get("playground", {}):
        from tokenscope.gui.playground.sampling_panel import check_values

        try:
            check_values(show["playground"]["sampling"])
        except ValueError as e:
            raise LessonError(f"{where}: show.playground.sampling: {e}") from None
    names = []
    if "preset" in show.get("fewshot", {}):
        names.append(("show.fewshot.preset", show["fewshot"]["preset"]))
    if "task" in show.get("scale", {}):
        names.append(("show.scale.task", show["scale"]["task"]))
    if names:
        from tokenscope.lm.fewshot import list_presets

        presets = list_presets()
        for key, name in names:
            if name not in presets:
                raise LessonError(
                    f"{where}: {key} {name!r} is not a few-shot preset "
                    f"(there are: {', '.join(presets)})"
                )
    if "preset" in show.get("training", {}):
        from tokenscope.lm.config import PRESETS

        if show["training"]["preset"] not in PRESETS:
            raise LessonError(
                f"{where}: show.training.preset {show['training']['preset']!r} "
                f"is not a model preset (there are: {', '.join(PRESETS)})"
            )
    return show


def _check_checks(where: str, checks: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(checks, list):
        raise LessonError(f"{where}: 'checks' should be a list")
    out = []
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("kind"), str):
            raise LessonError(f"{where}: checks[{i}] should be an object with a 'kind'")
        kind = check["kind"]
        if kind not in CHECK_FIELDS:
            raise LessonError(
                f"{where}: checks[{i}] has the unknown kind {kind!r} "
                f"(known: {', '.join(CHECK_FIELDS)})"
            )
        params = {k: v for k, v in check.items() if k != "kind"}
        _fields(where, params, CHECK_FIELDS[kind], f"checks[{i}] ({kind})")
        for key in ("tokens", "exclude"):
            if key in params and not all(isinstance(t, str) for t in params[key]):
                raise LessonError(f"{where}: checks[{i}].{key} should be a list of texts")
        out.append(dict(check))
    return tuple(out)


def parse_lesson(data: Any, where: str, key: str) -> Lesson:
    """A lesson from its JSON value; LessonError names `where` and what is wrong."""
    if not isinstance(data, dict):
        raise LessonError(f"{where}: a lesson should be a JSON object")
    known = ("title", "text", "notice", "show", "checks")
    for name in data:
        if name not in known:
            raise LessonError(f"{where}: unknown field {name!r} (known: {', '.join(known)})")
    return Lesson(
        key=key,
        title=_text(where, data, "title", 120),
        text=_text(where, data, "text", MAX_TEXT_CHARS),
        notice=_text(where, data, "notice", 600),
        show=_check_show(where, data.get("show", {})),
        checks=_check_checks(where, data.get("checks", [])),
        path=where,
    )


def load_lesson(path: Path) -> Lesson:
    """One lesson file; LessonError (one line naming the file) for anything wrong."""
    try:
        data = load_json(path, MAX_LESSON_BYTES, "a lesson (JSON)")
    except FileReadError as e:
        raise LessonError(str(e)) from None
    return parse_lesson(data, str(path), path.stem)


def lesson_files() -> list[Path]:
    """The bundled lessons by file name, then the teacher's own (one of the same name
    replaces the bundled lesson)."""
    files: dict[str, Path] = {}
    for folder in (bundled_folder(), teacher_folder()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.json"))[:MAX_LESSONS]:
                files[path.stem] = path
    return [files[k] for k in sorted(files)]


def load_lessons() -> tuple[list[Lesson], list[str]]:
    """Every lesson that reads, in file-name order, and a line for each file that does not."""
    lessons, problems = [], []
    for path in lesson_files():
        try:
            lessons.append(load_lesson(path))
        except LessonError as e:
            problems.append(str(e))
    return lessons, problems
