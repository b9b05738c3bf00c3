"""`tokenscope doctor`: what this installation has and where it keeps things.

Each check reports a value or the problem it found; nothing here changes anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Mapping
from typing import Any

from tokenscope import __version__


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# What Qt's xcb platform plugin loads on Linux, and the Debian/Ubuntu package of each. Qt's own
# message for a missing one names the plugin, not the library.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def display_problem(
    environ: Mapping[str, str] | None = None,
    find_library: Callable[[str], str | None] | None = None,
    system: str | None = None,
) -> str | None:
    """Why the window could not open here, in words (None: nothing known to be missing)."""
    import ctypes.util

    environ = os.environ if environ is None else environ
    find = find_library or ctypes.util.find_library
    if (system or platform.system()) != "Linux":
        return None
    wanted = environ.get("QT_QPA_PLATFORM", "")
    if wanted and not wanted.startswith("xcb"):
        return None  # offscreen, wayland, vnc...: Qt's own checks apply
    if not wanted and not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return (
            "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set). Run the window "
            "on a desktop, under a virtual screen (xvfb-run tokenscope), or use the command "
            "line (tokenscope --help); QT_QPA_PLATFORM=offscreen runs it without a screen."
        )
    if not environ.get("DISPLAY"):
        return None  # Wayland only: the xcb libraries are not needed
    missing = [pkg for lib, pkg in XCB_LIBRARIES.items() if find(lib) is None]
    if missing:
        return (
            "Qt's X11 support needs libraries this system lacks. On Debian or Ubuntu: "
            f"sudo apt install {' '.join(missing)}"
        )
    return None


def cjk_fonts() -> list[str]:
    """Installed font families that can show Chinese, Japanese or Korean (via fc-list)."""
    import shutil
    import subprocess

    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()})


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
        from tokenscope.lm.memory_probe import report as memory_report

        facts.update(memory_report())
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
    facts["display"] = display_problem() or "ok"
    fonts = cjk_fonts()
    facts["cjk_fonts"] = (
        ", ".join(fonts[:3])
        if fonts
        else "none: Chinese, Japanese and Korean text shows as boxes (Debian/Ubuntu: "
        "sudo apt install fonts-noto-cjk)"
    )
    from tokenscope.lm.catalog import catalog
    from tokenscope.paths import data_dir

    facts["models"] = [
        {"name": e.name, "kind": e.kind, "note": e.note, "path": e.path} for e in catalog()
    ]
    home = data_dir()
    facts["data_folder"] = str(home)
    facts["settings_file"] = str(home / "settings.ini")
    facts["runs_folder"] = str(home / "runs")
    return facts


def print_report(facts: dict[str, Any]) -> None:
    width = 24
    for key, value in facts.items():
        if key == "models":
            print(f"{'models':<{width}}")
            for m in value:
                where = m["note"] or m["path"]
                print(f"  {m['name']:<30} {m['kind']:<10} {where}")
        else:
            print(f"{key:<{width}}{value}")
