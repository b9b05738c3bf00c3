"""Models from the Hugging Face Hub, through `huggingface_hub` (the ecosystem's own client).

    hf:ORG/REPO[@REVISION]             a safetensors folder (config, tokenizer, weights)
    hf:ORG/REPO/FILE.gguf[@REVISION]   one GGUF file

Files go to the standard Hugging Face cache (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface), so
models other tools downloaded are found, and what is pulled here serves them too. HF_TOKEN or
`hf auth login`, HF_ENDPOINT and HF_HUB_OFFLINE are honoured as the client honours them.
Only what Tokenscope reads is fetched: config and tokenizer files and safetensors weights, or
the one GGUF; never pickles. The requests are made by tokenscope.lm.hub_download, which
checks every name and number the Hub sends before it touches the file system, and every file
against the size and hash the listing gives.

Resuming: a dropped connection resumes inside the file (a Range request); a cancelled pull
keeps every file it finished, and what it had of the file it was fetching, and the next pull
continues from there.
"""

from __future__ import annotations

import fnmatch
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError
from tokenscope.lm.hub_download import (
    DownloadCancelled,
    HubAnswerError,
    HubFile,
    Progress,
    api_json,
    fetch_file,
    fetch_listing,
    record_revision,
    repo_folder,
)

__all__ = ["DownloadCancelled", "HubRef", "Transfer", "cached_path", "parse_ref", "pull"]

PREFIX = "hf:"
# The files a safetensors folder needs; weights are only ever *.safetensors.
FOLDER_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
    "*.safetensors",
)
INDEX = "model.safetensors.index.json"
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


@dataclass(frozen=True)
class HubRef:
    repo: str  # ORG/REPO
    file: str | None = None  # a GGUF file in it, else the whole folder
    revision: str | None = None  # a branch, tag or commit; None is main

    def __str__(self) -> str:
        text = PREFIX + self.repo + (f"/{self.file}" if self.file else "")
        return text + (f"@{self.revision}" if self.revision else "")

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.repo}"


def is_hub_ref(text: str) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_ref(text: str) -> HubRef:
    """`hf:ORG/REPO[/FILE.gguf][@REVISION]`, or a message saying what is wrong with it."""
    if not is_hub_ref(text):
        raise ModelNotFoundError(f"{text!r} is not a Hub model (write hf:ORG/REPO)")
    body, _, revision = text[len(PREFIX) :].partition("@")
    parts = body.strip("/").split("/")
    usage = "write hf:ORG/REPO, hf:ORG/REPO@REVISION or hf:ORG/REPO/FILE.gguf"
    if len(parts) < 2 or not all(_NAME.match(p) for p in parts[:2]):
        raise ModelNotFoundError(f"{text!r} is not a Hub model id ({usage})")
    file = "/".join(parts[2:]) or None
    if file is not None and (not file.lower().endswith(".gguf") or ".." in file.split("/")):
        raise ModelNotFoundError(
            f"{text!r}: only a .gguf file can be named inside a repository ({usage})"
        )
    if revision and (not _REVISION.match(revision) or {"", ".", ".."} & set(revision.split("/"))):
        raise ModelNotFoundError(f"{text!r}: {revision!r} is not a branch, tag or commit")
    return HubRef("/".join(parts[:2]), file, revision or None)


# ----- progress ----------------------------------------------------------------------------


@dataclass
class Transfer:
    """Where a pull is: bytes of all the files it fetches, speed, time left."""

    total: int
    done: int = 0
    file: str = ""
    started: float = field(default_factory=time.monotonic)
    _window: list[tuple[float, int]] = field(default_factory=list)

    def add(self, n: int) -> None:
        self.set(self.done + n)

    def set(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        self._window.append((now, self.done))
        while len(self._window) > 2 and now - self._window[0][0] > 5.0:
            self._window.pop(0)

    @property
    def speed(self) -> float:
        """Bytes a second over the last few seconds."""
        if len(self._window) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._window[0], self._window[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        speed = self.speed
        return (self.total - self.done) / speed if speed > 0 and self.total else None


# ----- what a repository holds -------------------------------------------------------------


def is_wanted_file(name: str, ref: HubRef) -> bool:
    if ref.file is not None:
        return name == ref.file
    base = name.rsplit("/", 1)[-1]
    return "/" not in name and any(fnmatch.fnmatch(base, p) for p in FOLDER_FILES)


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def remote_files(ref: HubRef) -> tuple[str, list[HubFile]]:
    """The commit `ref` names and the files a pull of it fetches, asking the Hub; refuses a
    repository whose weights are only pickles, and a GGUF file that is not there."""
    listing = fetch_listing(ref)
    files = [f for f in listing.files if is_wanted_file(f.name, ref)]
    names = [f.name for f in listing.files]
    if ref.file is not None and not files:
        if ref.file in listing.skipped:
            raise HubAnswerError(
                f"the Hub's listing of {ref.repo} gives {ref.file} a name, size or hash that "
                "is not one; it is not downloaded"
            )
        ggufs = [n for n in names if n.lower().endswith(".gguf")]
        hint = f" (it has {', '.join(ggufs[:6])})" if ggufs else " (it has no GGUF files)"
        raise ModelNotFoundError(f"{ref.repo} has no file {ref.file!r}{hint}")
    if ref.file is None and not any(f.name.endswith(".safetensors") for f in files):
        pickles = [n for n in names if any(fnmatch.fnmatch(n, p) for p in PICKLES)]
        ggufs = [n for n in names if n.lower().endswith(".gguf")]
        if ggufs:
            raise ModelFormatError(
                f"{ref.repo} holds GGUF files, not a safetensors folder: pull one of them, "
                f"e.g. hf:{ref.repo}/{ggufs[0]}"
            )
        if pickles:
            raise ModelFormatError(
                f"{ref.repo} has its weights only as PyTorch pickles ({pickles[0]}, ...); "
                "Tokenscope never loads pickles (they can run code): look for a safetensors "
                "or GGUF version of this model"
            )
        raise ModelFormatError(f"{ref.repo} has no safetensors weights")
    if ref.file is None and "config.json" not in [f.name for f in files]:
        raise ModelFormatError(f"{ref.repo} has no config.json: not a transformers model folder")
    return listing.commit, files


def revisions(repo: str) -> list[str]:
    """A repository's branches and tags, main first, then in natural order (step1000 before
    step10000): Pythia publishes each training checkpoint as a branch. Names that are not
    names of a revision (checked as parse_ref checks a typed one) are left out."""
    ref = parse_ref(f"{PREFIX}{repo}")
    answer = api_json(f"/api/models/{ref.repo}/refs", ref)
    names: set[str] = set()
    for kind in ("branches", "tags"):
        entries = answer.get(kind) if isinstance(answer, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and _REVISION.match(name) and ".." not in name.split("/"):
                names.add(name)

    def natural(name: str) -> tuple[int | str, ...]:
        return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))

    return sorted(names, key=lambda n: (n != "main", natural(n)))


def training_checkpoints(repo: str, count: int | None = None) -> list[str]:
    """The revisions of `repo` that are training checkpoints (`step1000`: Pythia's naming),
    earliest first; with `count`, that many spread evenly on a log scale of the step (the
    first and the last always among them), since most change happens early."""
    return spread_checkpoints(revisions(repo), count)


def spread_checkpoints(names: list[str], count: int | None = None) -> list[str]:
    """training_checkpoints on a list of revision names already fetched (no network)."""
    steps = sorted((int(name[4:]), name) for name in names
                   if re.fullmatch(r"step\d{1,12}", name))  # fmt: skip
    if count is None or count >= len(steps):
        return [name for _step, name in steps]
    if count < 2:
        raise ValueError("choose at least 2 checkpoints")
    low, high = math.log1p(steps[0][0]), math.log1p(steps[-1][0])
    chosen: list[str] = []
    for i in range(count):
        goal = low + (high - low) * i / (count - 1)
        left = [s for s in steps if s[1] not in chosen]
        chosen.append(min(left, key=lambda s: abs(math.log1p(s[0]) - goal))[1])
    return sorted(chosen, key=lambda name: int(name[4:]))


@dataclass(frozen=True)
class Choice:
    """One thing a repository offers to download: its folder, or one of its GGUF files."""

    ref: str
    label: str
    size_bytes: int


def choices(repo: str, revision: str | None = None) -> list[Choice]:
    """What can be pulled from `repo`: the safetensors folder (if it is one) and each GGUF
    file, smallest GGUF first; a message when there is nothing Tokenscope can read."""
    ref = parse_ref(f"{PREFIX}{repo}" + (f"@{revision}" if revision else ""))
    listing = fetch_listing(ref)
    at = f"@{revision}" if revision else ""
    found: list[Choice] = []
    folder = [f for f in listing.files if is_wanted_file(f.name, ref)]
    names = {f.name for f in folder}
    if "config.json" in names and any(n.endswith(".safetensors") for n in names):
        found.append(Choice(str(ref), "safetensors folder", sum(f.size for f in folder)))
    ggufs = sorted((f for f in listing.files if f.name.lower().endswith(".gguf")),
                   key=lambda f: f.size)  # fmt: skip
    for f in ggufs:
        found.append(Choice(f"{PREFIX}{repo}/{f.name}{at}", f.name, f.size))
    if not found:
        raise ModelFormatError(
            f"{repo} has neither a safetensors folder (config.json and *.safetensors) nor a GGUF "
            "file; Tokenscope never loads pickles"
        )
    return found


def pull(
    ref: HubRef | str,
    on_progress: Callable[[Transfer], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Download `ref` into the Hugging Face cache; the GGUF file or the snapshot folder.

    Files already in the cache are not fetched again. Each file's size and hash are checked
    against the Hub's listing; a damaged one is removed, with a message. Raises
    DownloadCancelled when `cancel` is set (what came stays for the next pull).
    """
    from huggingface_hub import constants

    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if constants.HF_HUB_OFFLINE:
        path = cached_path(ref)
        if path is None:
            raise ModelNotFoundError(
                f"HF_HUB_OFFLINE is set and {ref} is not in the Hugging Face cache"
            )
        return path
    commit, files = remote_files(ref)
    cache = Path(cache_folder())
    transfer = Transfer(total=sum(f.size for f in files))
    finished = [0]

    def added(n: int) -> None:
        transfer.set(transfer.done + n)
        if on_progress is not None:
            on_progress(transfer)

    progress = Progress(added, cancel)
    # Small files first: config.json says whether Tokenscope can open the model at all before
    # gigabytes of weights come, and the index says which weight files it needs.
    files.sort(key=lambda f: (f.name.endswith((".safetensors", ".gguf")), f.name))
    local: Path | None = None
    for f in list(files):
        if f not in files:
            continue  # a weight file the index does not list
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("the download was cancelled")
        transfer.file = f.name
        transfer.set(finished[0])
        local = fetch_file(ref, cache, commit, f, progress)
        finished[0] += f.size
        transfer.set(finished[0])
        if on_progress is not None:
            on_progress(transfer)
        if f.name == "config.json":
            _check_config(local, ref)
        elif f.name == INDEX:
            listed = _index_shards(local)
            files = [g for g in files if not g.name.endswith(".safetensors") or g.name in listed]
            transfer.total = sum(g.size for g in files)
    assert local is not None
    # The revision's name records its commit, so that `@revision` is found offline.
    record_revision(repo_folder(cache, ref.repo), ref.revision or "main", commit)
    return local if ref.file else local.parent


def _check_config(path: Path, ref: HubRef) -> None:
    """Refuse, before the weights come, a folder whose config.json Tokenscope cannot open."""
    import json

    from tokenscope.lm.hf_config import config_from_hf

    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
        config_from_hf(hf)
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{ref}: {e}") from None


def _index_shards(path: Path) -> set[str]:
    """The weight files a sharded folder's index lists (what the loader reads)."""
    import json

    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        return {str(v) for v in weight_map.values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFormatError(f"{path.name} is not a safetensors index ({e})") from None


def cache_folder() -> str:
    """The Hugging Face cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/...)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_path(ref: HubRef | str) -> Path | None:
    """The GGUF file or the snapshot folder of `ref` in the cache, without the network; None
    when it is not there (or only partly: a folder needs its config and weights)."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if ref.file is not None:
        found = try_to_load_from_cache(
            ref.repo, ref.file, revision=ref.revision, cache_dir=cache_folder()
        )
        return Path(found) if isinstance(found, str) else None
    try:
        folder = Path(
            snapshot_download(
                ref.repo, revision=ref.revision, local_files_only=True, cache_dir=cache_folder()
            )
        )
    except Exception:
        return None
    return folder if is_complete_snapshot(folder) else None


def is_complete_snapshot(folder: Path) -> bool:
    """A config and its weights: every shard the index lists, or one model.safetensors."""
    if not (folder / "config.json").is_file():
        return False
    if (folder / INDEX).is_file():
        try:
            shards = _index_shards(folder / INDEX)
        except ModelFormatError:
            return False
        return bool(shards) and all((folder / shard).is_file() for shard in shards)
    return any(folder.glob("*.safetensors"))


def resolve(text: str) -> Path:
    """What load_model opens for `hf:...`: the cached copy, or a message saying how to pull."""
    ref = parse_ref(text)
    path = cached_path(ref)
    if path is None:
        raise ModelNotFoundError(
            f"{ref} is not downloaded yet: run `tokenscope models pull {ref}` or use the "
            "Models tab's Hub search"
        )
    return path
