"""Searching the Hugging Face Hub, and what its cache holds: list it, delete from it.

    search("smollm2")                # HubModel records: size, formats, licence, gated
    cached_models()                  # CachedModel records: what is downloaded here
    delete_cached("hf:ORG/REPO")     # bytes freed

Downloads are tokenscope.lm.hub's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenscope.escapes import printable
from tokenscope.lm.errors import ModelNotFoundError
from tokenscope.lm.hub import (
    PREFIX,
    HubRef,
    cache_folder,
    cached_path,
    first_line,
    is_complete_snapshot,
    is_wanted_file,
    parse_ref,
)
from tokenscope.lm.hub_download import api_json


@dataclass(frozen=True)
class HubModel:
    """One search result."""

    id: str
    downloads: int | None
    parameters: int | None
    formats: tuple[str, ...]  # "safetensors", "gguf"
    license: str | None
    gated: bool
    size_bytes: int | None
    architecture: str | None


def search(query: str, limit: int = 30) -> list[HubModel]:
    """Text-generation models on the Hub matching `query`, most downloaded first. What the
    Hub sends is read field by field: a result with a wrong type somewhere is left out, a
    field of a wrong type is taken as unknown."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError("HF_HUB_OFFLINE is set: the Hub cannot be searched")
    params: dict[str, Any] = {
        "pipeline_tag": "text-generation",
        "sort": "downloads",
        "direction": -1,
        "limit": limit,
        "expand": ["downloads", "gated", "tags", "safetensors", "gguf", "usedStorage",
                   "pipeline_tag"],
    }  # fmt: skip
    if query:
        params["search"] = query
    where = HubRef("search/results")  # (only for the messages)
    try:
        found = api_json("/api/models", where, params)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"the Hub cannot be searched now ({first_line(e)})") from None
    if not isinstance(found, list):
        raise ModelNotFoundError("the Hub answered the search with something that is not a list")
    results = [m for m in (_hub_model(item) for item in found[:limit]) if m is not None]
    return results


def _hub_model(item: Any) -> HubModel | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    try:
        ref = parse_ref(PREFIX + item["id"])  # a name that is not a repository's: left out
    except ModelNotFoundError:
        return None
    tags = [t for t in item.get("tags") or [] if isinstance(t, str)] if isinstance(
        item.get("tags"), list) else []  # fmt: skip
    safetensors, gguf = _object(item.get("safetensors")), _object(item.get("gguf"))
    formats = tuple(f for f in ("safetensors", "gguf") if f in tags or item.get(f))
    license_tag = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    architecture = gguf.get("architecture")
    return HubModel(
        id=ref.repo,
        downloads=_count(item.get("downloads")),
        parameters=_count(safetensors.get("total")) or _count(gguf.get("total")),
        formats=formats,
        license=printable(license_tag[:60]) if license_tag else None,
        gated=bool(item.get("gated")),
        size_bytes=_count(item.get("usedStorage")),
        architecture=printable(architecture[:60]) if isinstance(architecture, str) else None,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None


@dataclass(frozen=True)
class CachedModel:
    ref: str  # what load_model takes
    path: str
    size_bytes: int


def cached_models() -> list[CachedModel]:
    """Models in the Hugging Face cache that Tokenscope can open: snapshot folders with a
    config and safetensors weights, and GGUF files; newest first."""
    from huggingface_hub import scan_cache_dir

    try:
        cache = scan_cache_dir(cache_folder())
    except Exception:
        return []
    found: list[tuple[float, CachedModel]] = []
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            names = {f.file_name: f for f in rev.files}
            label = next(iter(sorted(rev.refs)), None) or rev.commit_hash
            suffix = "" if label == "main" else f"@{label}"
            when = rev.last_modified
            if "config.json" in names and is_complete_snapshot(Path(rev.snapshot_path)):
                ref = f"{PREFIX}{repo.repo_id}{suffix}"
                found.append((when, CachedModel(ref, str(rev.snapshot_path), rev.size_on_disk)))
            for f in rev.files:
                if f.file_name.lower().endswith(".gguf"):
                    rel = f.file_path.relative_to(rev.snapshot_path).as_posix()
                    ref = f"{PREFIX}{repo.repo_id}/{rel}{suffix}"
                    found.append((when, CachedModel(ref, str(f.file_path), f.size_on_disk)))
    return [m for _, m in sorted(found, key=lambda x: -x[0])]


def delete_cached(ref_text: str) -> int:
    """Remove a cached model from the Hugging Face cache: the one GGUF file, or the folder's
    files (other files of the same revision stay); the bytes freed. A revision left empty
    goes, with the branch or tag names pointing at it."""
    ref = parse_ref(ref_text)
    path = cached_path(ref)
    if path is None:
        raise ModelNotFoundError(f"{ref} is not in the Hugging Face cache")
    snapshot = path.parent if ref.file is not None else path
    if ref.file is not None:
        links = [path]
    else:
        links = [p for p in snapshot.iterdir() if is_wanted_file(p.name, ref)]
    repo_folder = snapshot.parent.parent
    freed = 0
    for link in links:
        blob = link.resolve()
        link.unlink(missing_ok=True)
        others = [
            p
            for p in (repo_folder / "snapshots").rglob("*")
            if p.is_symlink() and p.resolve() == blob
        ]
        if not others and blob.is_file() and blob.parent.name == "blobs":
            freed += blob.stat().st_size
            blob.unlink()
    if not any(snapshot.rglob("*")):
        snapshot.rmdir()
        commit = snapshot.name
        for ref_file in (
            (repo_folder / "refs").rglob("*") if (repo_folder / "refs").is_dir() else []
        ):
            if ref_file.is_file() and ref_file.read_text().strip() == commit:
                ref_file.unlink()
    return freed
