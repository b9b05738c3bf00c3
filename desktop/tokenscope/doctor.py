"""`tokenscope doctor`: what this installation has and where it keeps things.

Each check reports a value or the problem it found; nothing here changes anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

from tokenscope import __version__


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> dict[str, Any]:
    """The facts, as a dict of plain values (printed as text or JSON)."""
    facts: dict[str, Any] = {
        "tokenscope": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "frozen": bool(getattr(sys, "frozen", False)),
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
    }
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["gpu"] = (
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available()
            else "none (CPU only)"
        )
    except ImportError as e:
        facts["torch"] = f"cannot import: {e}"
    facts["tokenizers"] = _version("tokenizers")
    facts["pyside6"] = _version("PySide6-Essentials")
    facts["pyqtgraph"] = _version("pyqtgraph")
    facts["qt_platform"] = os.environ.get("QT_QPA_PLATFORM") or (
        "xcb"
        if os.environ.get("DISPLAY")
        else "wayland"
        if os.environ.get("WAYLAND_DISPLAY")
        else "none: no display (use offscreen)"
    )
    from tokenscope.lm.catalog import catalog
    from tokenscope.lm.registry import data_dir

    facts["models"] = [
        {"name": e.name, "kind": e.kind, "note": e.note, "path": e.path} for e in catalog()
    ]
    home = data_dir()
    facts["data_folder"] = str(home)
    facts["settings_file"] = str(home / "settings.ini")
    facts["runs_folder"] = str(home / "runs")
    return facts


def print_report(facts: dict[str, Any]) -> None:
    width = 14
    for key, value in facts.items():
        if key == "models":
            print(f"{'models':<{width}}")
            for m in value:
                where = m["note"] or m["path"]
                print(f"  {m['name']:<30} {m['kind']:<10} {where}")
        else:
            print(f"{key:<{width}}{value}")
