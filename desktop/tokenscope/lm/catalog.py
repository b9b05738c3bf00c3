"""The catalogue of models a person can open: bundled, installed by name, downloaded from
the Hub, the person's training runs (each run's best, else latest, checkpoint), recently
opened.

One list for every client: `tokenscope models list` prints it, the window's Models tab and
model picker show it. Reading it opens only file headers, never weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tokenscope.lm.formats.summary import ModelSummary, summarize
from tokenscope.lm.hub_listing import cached_models
from tokenscope.lm.loading import BUILTIN, builtin_model_path
from tokenscope.lm.registry import KNOWN_MODELS, known_model_path, parts_installed, recent_models
from tokenscope.lm.run_checkpoints import best_checkpoint, latest_checkpoint

#: the newest runs listed (a person who trained hundreds still gets a list that reads)
MAX_RUNS = 50


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # what load_model accepts for bundled and installed models; a file or folder name
    kind: str  # "bundled", "installed", "available" (can be pulled), "hub" (in the Hugging
    # Face cache), "run" (a training run's checkpoint) or "recent"
    path: str | None = None
    size_bytes: int | None = None
    parameters: int | None = None
    architecture: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    note: str | None = None  # why it cannot be opened, or how to install it
    license: str | None = None

    @property
    def openable(self) -> bool:
        return self.kind in ("bundled", "installed", "hub", "run", "recent") and self.note is None

    @property
    def target(self) -> str:
        """What to hand to load_model."""
        return self.path if self.kind in ("recent", "run") and self.path else self.name

    @property
    def removable(self) -> bool:
        """Whether the person can delete it here (a recent one can also be forgotten; an
        installed one is uninstalled)."""
        return self.kind in ("recent", "hub", "installed")


def _entry(name: str, kind: str, s: ModelSummary, path: str | None = None) -> CatalogEntry:
    return CatalogEntry(
        name=name,
        kind=kind,
        path=path or str(s.path),
        size_bytes=s.size_bytes,
        parameters=s.parameters,
        architecture=s.architecture,
        quantization=s.quantization,
        context_length=getattr(s, "context_length", None),
        note=f"cannot open: {s.problem}" if s.problem else None,
    )


def catalog() -> list[CatalogEntry]:
    """Every model worth listing: bundled, installed by name, in the Hugging Face cache, the
    training runs (newest first), then recently opened."""
    entries = []
    builtin = builtin_model_path()
    if builtin.exists():
        entries.append(_entry(BUILTIN, "bundled", summarize(builtin)))
    else:
        entries.append(CatalogEntry(BUILTIN, "bundled", note="not in this installation"))
    for name in sorted(KNOWN_MODELS):
        known = KNOWN_MODELS[name]
        path = known_model_path(name)
        if path is not None:
            entries.append(
                replace(_entry(name, "installed", summarize(path)), license=known.license)
            )
        elif parts_installed(name):  # assembled from its packages when first opened
            entries.append(CatalogEntry(name, "installed", license=known.license))
        else:
            entries.append(
                CatalogEntry(
                    name,
                    "available",
                    note=f"not installed: tokenscope models pull {name}",
                    license=known.license,
                )
            )
    for cached in cached_models():
        s = summarize(cached.path)
        entries.append(replace(_entry(cached.ref, "hub", s), size_bytes=cached.size_bytes))
    entries += run_entries()
    listed = {_same_file(e.path) for e in entries if e.path}
    for recent in recent_models():
        if _same_file(recent) in listed:
            continue  # opened by its path, but it is the bundled or an installed model
        listed.add(_same_file(recent))
        entries.append(_entry(Path(recent).name or recent, "recent", summarize(recent), recent))
    return entries


def run_entries(root: Path | None = None) -> list[CatalogEntry]:
    """The training runs in `root` (the runs folder by default), newest first, each as its
    best checkpoint, else its latest; runs without a complete checkpoint are left out."""
    from tokenscope.paths import runs_dir

    root = runs_dir() if root is None else root
    try:
        runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: -p.stat().st_mtime)
    except OSError:
        return []  # no runs folder yet (or one that cannot be read): no runs to list
    found = []
    for run in runs[:MAX_RUNS]:
        checkpoint = best_checkpoint(run) or latest_checkpoint(run)
        if checkpoint is not None:
            entry = _entry(f"{run.name} ({checkpoint.name})", "run", summarize(checkpoint))
            found.append(entry)
    return found


def _same_file(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return path
