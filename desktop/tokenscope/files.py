"""Files Tokenscope ships and files it writes: one place for both.

`resource_path` finds data installed with the package (tokenscope.resources: the bundled
model, presets, recipes, icons, reference tables). `atomic_write` replaces a file so that a
reader, a crash or a full disk never leaves it half written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """A path inside the installed tokenscope.resources package, e.g. ("presets", "x.json")."""
    return Path(str(resources.files("tokenscope.resources"))).joinpath(*parts)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it over `path`.

    The temporary file lies beside the target (a rename within one file system is atomic);
    on any failure it is removed and `path` keeps its old content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; ours are ordinary documents
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """`atomic_write` for UTF-8 text."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    atomic_write(path, write)
