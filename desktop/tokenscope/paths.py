"""Where Tokenscope keeps what it writes: one place, right on Linux, macOS and Windows.

    data_dir()      settings, runs, the recently opened list, model packages of a frozen app
                    (Linux ~/.local/share/tokenscope, macOS ~/Library/Application Support/
                    tokenscope, Windows %LOCALAPPDATA%\\tokenscope); TOKENSCOPE_HOME wins
    cache_dir()     what can be made again: assembled model files, scale results, compiled
                    code (Linux ~/.cache/tokenscope, macOS ~/Library/Caches/tokenscope,
                    Windows %LOCALAPPDATA%\\tokenscope\\Cache)

The folders follow `platformdirs` (which honours XDG_DATA_HOME and XDG_CACHE_HOME on Linux);
nothing here creates them: whoever writes first does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP = "tokenscope"


def data_dir() -> Path:
    """Where Tokenscope keeps its own files: TOKENSCOPE_HOME, else the platform's data folder
    (on macOS and Windows, the folder earlier versions used, ~/.local/share/tokenscope, while
    it is there and the platform's is not: settings and runs are not left behind)."""
    home = os.environ.get("TOKENSCOPE_HOME")
    if home:
        return Path(home).expanduser()
    platform = Path(platformdirs.user_data_dir(APP, appauthor=False))
    if sys.platform in ("darwin", "win32"):  # (on Linux that folder is the platform's own)
        earlier = Path.home() / ".local" / "share" / APP
        if platform != earlier and earlier.is_dir() and not platform.exists():
            return earlier
    return platform


def cache_dir() -> Path:
    """The platform's cache folder for Tokenscope (anything in it can be made again)."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def runs_dir() -> Path:
    """Training runs started from the window (and `tokenscope train` without --out)."""
    return data_dir() / "runs"


def settings_file() -> Path:
    """The window's settings (an INI file read with QSettings)."""
    return data_dir() / "settings.ini"


def models_cache_dir() -> Path:
    """Model files assembled from part packages (made again from the packages if lost)."""
    return cache_dir() / "models"


def scale_cache_dir() -> Path:
    """Results of probes and sweeps per model (tokenscope.lm.scale)."""
    return cache_dir() / "scale"


def inductor_cache_dir() -> Path:
    """Code that torch.compile built for the compiled decode step."""
    return cache_dir() / "inductor"
