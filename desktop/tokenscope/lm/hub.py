"""Models from the Hugging Face Hub, through `huggingface_hub` (the ecosystem's own client).

    hf:ORG/REPO[@REVISION]             a safetensors folder (config, tokenizer, weights)
    hf:ORG/REPO/FILE.gguf[@REVISION]   one GGUF file

Files go to the standard Hugging Face cache (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface), so
models other tools downloaded are found, and what is pulled here serves them too. HF_TOKEN or
`hf auth login`, HF_ENDPOINT and HF_HUB_OFFLINE are honoured as the client honours them.
Only what Tokenscope reads is fetched: config and tokenizer files and safetensors weights, or
the one GGUF; never pickles. Each weight file is checked against the SHA-256 the Hub lists.

Resuming: a dropped connection resumes inside the file (the client retries with a Range
request); a cancelled pull keeps every file it finished, and what it had of the file it was
fetching, and the next pull continues from there.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError, TokenscopeError

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from tqdm.auto import tqdm

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
PROGRESS_CHUNK = 1024 * 1024
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class DownloadCancelled(TokenscopeError):
    """The person stopped a download (what finished stays in the cache)."""


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
    if revision and (
        not re.match(r"^[A-Za-z0-9._/-]{1,200}$", revision) or ".." in revision.split("/")
    ):
        raise ModelNotFoundError(f"{text!r}: {revision!r} is not a branch, tag or commit")
    return HubRef("/".join(parts[:2]), file, revision or None)


# ----- progress and cancellation ----------------------------------------------------------


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


def _progress_class(
    transfer: Transfer,
    on_progress: Callable[[Transfer], None] | None,
    cancel: threading.Event | None,
) -> type[tqdm]:
    """A tqdm class for the client's byte counts: forwards them, and stops when cancelled."""
    from tqdm.auto import tqdm

    class _Bar(tqdm):  # type: ignore[misc]  # tqdm ships no type information
        # tqdm would start a monitor thread that outlives the download; our bars draw nothing.
        monitor_interval = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            # A resumed file starts part-way.
            transfer.set(transfer.done + int(kwargs.get("initial") or 0))

        def update_transfer(self, n: float | None = 1) -> None:
            """Network bytes, as opposed to bytes written: the client then keeps one bar per
            file (with Xet storage it would make two, counting every byte twice)."""

        def update(self, n: float | None = 1) -> bool | None:
            transfer.add(int(n or 0))
            if on_progress is not None:
                on_progress(transfer)
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("the download was cancelled")
            updated: bool | None = super().update(n)
            return updated

    return _Bar


# ----- what a repository holds -------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # for files stored with git-lfs (all weights)


def is_wanted_file(name: str, ref: HubRef) -> bool:
    if ref.file is not None:
        return name == ref.file
    base = name.rsplit("/", 1)[-1]
    return "/" not in name and any(fnmatch.fnmatch(base, p) for p in FOLDER_FILES)


def hub_api() -> HfApi:
    from huggingface_hub import HfApi

    return HfApi()


def _explain(error: Exception, ref: HubRef, file: str | None = None) -> TokenscopeError:
    """A clear message for what the client raised."""
    from huggingface_hub import errors

    if isinstance(error, errors.LocalEntryNotFoundError):  # the client could not get it
        return ModelNotFoundError(
            f"the Hub cannot be reached for {ref}, and it is not in the Hugging Face cache "
            f"({first_line(error)})"
        )
    if isinstance(error, errors.GatedRepoError):
        return ModelNotFoundError(
            f"{ref.repo} is gated: accept its licence on {ref.page} (signed in to Hugging Face), "
            "then log in here with `hf auth login` or set HF_TOKEN to a token of that account"
        )
    if isinstance(error, errors.RevisionNotFoundError):
        return ModelNotFoundError(f"{ref.repo} has no revision {ref.revision!r}")
    if isinstance(error, errors.RepositoryNotFoundError):
        return ModelNotFoundError(
            f"{ref.repo} was not found on the Hub (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        )
    if isinstance(error, errors.EntryNotFoundError):
        return ModelNotFoundError(f"{ref.repo} has no file {file or ref.file or '(unnamed)'!r}")
    if isinstance(error, errors.OfflineModeIsEnabled):
        return ModelNotFoundError(
            f"HF_HUB_OFFLINE is set and {ref} is not in the Hugging Face cache"
        )
    if isinstance(error, errors.HfHubHTTPError):
        status = getattr(error.response, "status_code", "?")
        return ModelNotFoundError(f"the Hub answered {status} for {ref}: {first_line(error)}")
    return ModelNotFoundError(f"the Hub cannot be reached for {ref} ({first_line(error)})")


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def remote_files(ref: HubRef) -> list[RemoteFile]:
    """The files a pull of `ref` fetches, asking the Hub; refuses a repository whose
    weights are only pickles, and a GGUF file that is not there."""
    try:
        info = hub_api().model_info(ref.repo, revision=ref.revision, files_metadata=True)
    except Exception as e:
        raise _explain(e, ref) from None
    siblings = info.siblings or []
    files = [
        RemoteFile(s.rfilename, int(s.size or (s.lfs.size if s.lfs else 0) or 0),
                   s.lfs.sha256 if s.lfs else None)
        for s in siblings
        if is_wanted_file(s.rfilename, ref)
    ]  # fmt: skip
    names = [s.rfilename for s in siblings]
    if ref.file is not None and not files:
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
    return files


def revisions(repo: str) -> list[str]:
    """A repository's branches and tags, main first, then in natural order (step1000 before
    step10000): Pythia publishes each training checkpoint as a branch."""
    ref = parse_ref(f"{PREFIX}{repo}")
    try:
        refs = hub_api().list_repo_refs(ref.repo)
    except Exception as e:  # every client failure becomes one clear message
        raise _explain(e, ref) from None
    names = {r.name for r in [*refs.branches, *refs.tags]}

    def natural(name: str) -> tuple[int | str, ...]:
        return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))

    return sorted(names, key=lambda n: (n != "main", natural(n)))


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
    try:
        info = hub_api().model_info(ref.repo, revision=ref.revision, files_metadata=True)
    except Exception as e:
        raise _explain(e, ref) from None
    siblings = info.siblings or []
    at = f"@{revision}" if revision else ""
    found: list[Choice] = []
    folder = [s for s in siblings if is_wanted_file(s.rfilename, ref)]
    names = {s.rfilename for s in folder}
    if "config.json" in names and any(n.endswith(".safetensors") for n in names):
        size = sum(int(s.size or 0) for s in folder)
        found.append(Choice(str(ref), "safetensors folder", size))
    ggufs = sorted(
        (s for s in siblings if s.rfilename.lower().endswith(".gguf")), key=lambda s: s.size or 0
    )
    for s in ggufs:
        found.append(Choice(f"{PREFIX}{repo}/{s.rfilename}{at}", s.rfilename, int(s.size or 0)))
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

    Files already in the cache are not fetched again. Each weight file's SHA-256 is checked
    against the Hub's listing; a damaged one is removed, with a message. Raises
    DownloadCancelled when `cancel` is set (what came stays for the next pull).
    """
    from huggingface_hub import constants, hf_hub_download

    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if constants.HF_HUB_OFFLINE:
        path = cached_path(ref)
        if path is None:
            raise ModelNotFoundError(
                f"HF_HUB_OFFLINE is set and {ref} is not in the Hugging Face cache"
            )
        return path
    files = remote_files(ref)
    # The client reports (and can resume) per chunk read; its 10 MB chunks would leave a
    # progress bar still for seconds on a slow line.
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, PROGRESS_CHUNK)
    transfer = Transfer(total=sum(f.size for f in files))
    bar = _progress_class(transfer, on_progress, cancel)

    def fetch(f: RemoteFile) -> Path:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("the download was cancelled")
        transfer.file = f.name
        try:
            if f.sha256 is not None:  # a weight file: what a cancel left of it is kept
                _fetch_blob(ref, f, bar)
            # By the revision's name: the client records which commit it names in the cache,
            # so that `@revision` is found there offline. With the blob in place it only links.
            path = Path(
                hf_hub_download(
                    ref.repo,
                    f.name,
                    revision=ref.revision,
                    tqdm_class=bar,
                    cache_dir=cache_folder(),
                )
            )
        except TokenscopeError:  # cancelled, damaged, busy: said already
            raise
        except Exception as e:
            raise _explain(e, ref, f.name) from None
        return path

    # Small files first: config.json says whether Tokenscope can open the model at all before
    # gigabytes of weights come, and the index says which weight files it needs.
    files.sort(key=lambda f: (f.name.endswith((".safetensors", ".gguf")), f.name))
    finished = 0
    local: Path | None = None
    for f in list(files):
        if f not in files:
            continue  # a weight file the index does not list
        transfer.set(finished)
        local = fetch(f)
        finished += f.size
        transfer.set(finished)
        if on_progress is not None:
            on_progress(transfer)
        if f.name == "config.json":
            _check_config(local, ref)
        elif f.name == INDEX:
            listed = _index_shards(local)
            files = [g for g in files if not g.name.endswith(".safetensors") or g.name in listed]
            transfer.total = sum(g.size for g in files)
    assert local is not None
    return local if ref.file else local.parent


PARTIAL = ".tokenscope-partial"


def _fetch_blob(ref: HubRef, f: RemoteFile, bar: type[tqdm]) -> None:
    """Download a weight file into the cache's blob store through the client's own `http_get`,
    into a partial file that a cancel leaves in place and the next pull continues with a
    Range request (the client's own download deletes its partial file on any failure). The
    blob is named by its SHA-256, as the client names it; hf_hub_download then links it."""
    from filelock import FileLock, Timeout
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.file_download import http_get, repo_folder_name
    from huggingface_hub.utils import build_hf_headers

    folder = Path(cache_folder()) / repo_folder_name(repo_id=ref.repo, repo_type="model")
    blob = folder / "blobs" / str(f.sha256)
    if blob.is_file():
        return
    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + PARTIAL)
    try:
        lock = FileLock(str(partial) + ".lock", timeout=0)
        lock.acquire()
    except Timeout:
        raise ModelNotFoundError(
            f"{f.name} is being downloaded by another Tokenscope already; wait for it"
        ) from None
    try:
        url = hf_hub_url(ref.repo, f.name, revision=ref.revision, endpoint=constants.ENDPOINT)
        with partial.open("ab") as out:
            have = out.tell()
            if have > f.size:  # not this file: start over
                out.truncate(0)
                have = 0
            http_get(url, out, resume_size=have, headers=build_hf_headers(), expected_size=f.size,
                     tqdm_class=bar)  # fmt: skip
        if _sha256_of(partial) != f.sha256:
            partial.unlink(missing_ok=True)
            raise ModelFormatError(
                f"{f.name} arrived damaged (its SHA-256 differs from the Hub's); it was removed: "
                "pull again"
            )
        os.replace(partial, blob)
    finally:
        lock.release()
        Path(str(partial) + ".lock").unlink(missing_ok=True)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


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
