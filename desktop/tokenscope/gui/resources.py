"""Files the window uses from tokenscope.resources (icons)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def icon_path(size: int = 256) -> Path | None:
    base = Path(str(resources.files("tokenscope.resources"))) / "icons"
    for candidate in (base / f"tokenscope-{size}.png", base / "tokenscope.svg"):
        if candidate.is_file():
            return candidate
    return None
