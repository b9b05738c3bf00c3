"""What the model picker lists: each model once, named so that a person knows what it is.

The catalogue can hold one model under two names (an installed model and the file it was
opened from, a folder and a symlink to it, a Hub snapshot and its file); the picker shows the
first and finds it again for any of them. A known model's label says which variant it is
(SmolLM2-135M here is the instruction-tuned model).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenscope.lm.registry import KNOWN_MODELS

if TYPE_CHECKING:
    from PySide6.QtWidgets import QComboBox

    from tokenscope.lm.catalog import CatalogEntry


def same_place(path: str) -> str:
    """A file or folder as one string whatever the path that names it (resolved); a name
    that is not a path stays as it is."""
    try:
        p = Path(path).expanduser()
        return str(p.resolve()) if p.exists() else path
    except (OSError, ValueError):
        return path


def _places(e: CatalogEntry) -> set[str]:
    return {same_place(x) for x in (e.target, e.path) if x}


def picker_entries(entries: Iterable[CatalogEntry]) -> list[CatalogEntry]:
    """The openable entries, each file or folder once (the first entry naming it wins)."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if not e.openable:
            continue
        places = _places(e)
        if places & seen:
            continue
        seen |= places
        out.append(e)
    return out


def picker_label(e: CatalogEntry) -> str:
    """`name  (kind)`, with the variant of a known model (instruction-tuned or base)."""
    known = KNOWN_MODELS.get(e.name)
    if known is not None and known.variant:
        return f"{e.name}  ({e.kind}: {known.variant})"
    return f"{e.name}  ({e.kind})"


def picker_index(picker: QComboBox, entries: Iterable[CatalogEntry], target: str) -> int:
    """The picker's item for `target`, found by the same file or folder when it is named
    another way (-1: none)."""
    index = picker.findData(target)
    if index >= 0:
        return index
    place = same_place(target)
    for e in entries:
        if place in _places(e) and (i := picker.findData(e.target)) >= 0:
            return i
    for i in range(picker.count()):
        data = picker.itemData(i)
        if isinstance(data, str) and same_place(data) == place:
            return i
    return -1
