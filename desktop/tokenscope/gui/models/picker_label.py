"""How the model picker names a target it has no entry for (a path, a server)."""

from __future__ import annotations

from pathlib import Path


def picker_label(target: str) -> str:
    """How the model picker names a target it has no entry for."""
    from tokenscope.lm.backend import is_server
    from tokenscope.lm.remote import split_target

    if is_server(target):
        from urllib.parse import urlsplit

        url, model = split_target(target)
        name = (model or "model").rsplit("/", 1)[-1]
        return f"{name} @ {urlsplit(url).netloc}  (server)"
    return Path(target).name or target
