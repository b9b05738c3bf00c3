"""The window's settings file, checked as a whole before the window reads any of it.

    settings, note = open_settings(settings_file())
    if note: window.show_error(note)

A damaged file (cut short, a flipped bit, a value out of range, a wrong type) would otherwise
break the window at every start until the person found and deleted it. Here it is renamed
aside (`settings.damaged-20261201-101500.ini`, kept for whoever wants to look) and the window
starts with its defaults; the note says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from tokenscope.files import FileReadError, read_file
from tokenscope.gui.playground.sampling_panel import check_values

#: a real settings file is a few KB; the saved prompt is the only long value
MAX_FILE_BYTES = 128 * 1024 * 1024  # the prompt may be 5 M characters, escaped
MAX_PROMPT_CHARS = 5_000_000
MAX_NAME_CHARS = 4096
MAX_THREADS = 4096


class SettingsDamaged(ValueError):
    """What is wrong with a settings file (the message names the key)."""


def _text(value: Any, key: str, max_chars: int) -> str:
    if not isinstance(value, str) or len(value) > max_chars or "\0" in value:
        raise SettingsDamaged(f"{key} is not text of at most {max_chars:,} characters")
    return value


def _check_geometry(value: Any) -> None:
    if not isinstance(value, QByteArray) or value.size() > 64 * 1024:
        raise SettingsDamaged("window/geometry is not a saved window geometry")


def _check_sampling(value: Any) -> None:
    text = _text(value, "playground/sampling", 10_000)
    try:
        check_values(json.loads(text))
    except RecursionError:
        raise SettingsDamaged("playground/sampling nests too deeply") from None
    except ValueError as e:
        raise SettingsDamaged(f"playground/sampling: {e}") from None


def _check_threads(value: Any) -> None:
    text = _text(value, "model/threads", 20) if not isinstance(value, int) else str(value)
    if not text.isdigit() or int(text) > MAX_THREADS:
        raise SettingsDamaged(f"model/threads is not a whole number from 0 to {MAX_THREADS}")


CHECKS = {
    "window/geometry": _check_geometry,
    "playground/sampling": _check_sampling,
    "playground/prompt": lambda v: _text(v, "playground/prompt", MAX_PROMPT_CHARS),
    "model/threads": _check_threads,
    "model/last": lambda v: _text(v, "model/last", MAX_NAME_CHARS),
    "model/opening": lambda v: _text(v, "model/opening", MAX_NAME_CHARS),
}


def check_settings_file(path: Path) -> str | None:
    """What is wrong with the settings file at `path`, or None when it is sound (or absent)."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return "it is not a regular file"
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return f"it is {size:,} bytes long"
    try:
        # Regular files only, bounded: swapped for a FIFO after the look above, a plain read
        # would block the window's start for good.
        raw = read_file(path, MAX_FILE_BYTES, "the window's settings (INI)")
    except FileReadError as e:
        return str(e)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"it is not UTF-8 text (byte {e.start})"
    if b"\0" in raw:
        return "it holds NUL bytes"
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    if settings.status() != QSettings.Status.NoError:
        return "Qt cannot read it as an INI file"
    try:
        for key in settings.allKeys():
            if key in CHECKS:
                CHECKS[key](settings.value(key))
    except SettingsDamaged as e:
        return str(e)
    return None


def open_settings(path: Path) -> tuple[QSettings, str | None]:
    """The settings at `path`; a damaged file is set aside first (the note says where)."""
    problem = check_settings_file(path)
    note = None
    if problem is not None:
        aside = path.with_name(f"{path.stem}.damaged-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        try:
            path.replace(aside)
            where = f"it has been kept as {aside}"
        except OSError as e:
            where = f"it could not be moved aside ({e.strerror}); it will be overwritten"
        note = (
            f"Your settings file was damaged ({problem}); {where}. Tokenscope starts with its "
            "default settings."
        )
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    if problem is not None and path.exists():  # could not be moved: start from nothing
        settings.clear()
    return settings, note


def int_setting(value: object, default: int = 0) -> int:
    """A whole-number setting; `default` where it is not one."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def json_setting(settings: QSettings, key: str) -> dict[str, Any]:
    """A setting kept as a JSON object; {} where it is missing or unreadable (the defaults)."""
    try:
        value = json.loads(str(settings.value(key, "{}")))
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
