"""The Hub's HTTP, done here: listings and files, with nothing a server says trusted unchecked.

    listing = fetch_listing(ref)                  # the commit and the files, every value checked
    path = fetch_file(ref, listing.commit, f, ...)  # into the Hugging Face cache, verified

`huggingface_hub` names a downloaded file after the server's ETag header, unchecked: a mirror
(HF_ENDPOINT, or anything on a plain-http path) answering `ETag: "../../x"` wrote outside the
cache. So the requests are made here, and every name that reaches the file system is checked
first: a commit is 40 hex digits, a SHA-256 64, a git blob id 40, a file name a relative path
of plain parts. A file goes to a partial file next to its blob and is moved into place only
once its size and hash are what the listing says (SHA-256 for weights, the git blob id for
the small files); a server that sends more than the listed size is cut off at once.

The cache keeps the Hugging Face layout (models--ORG--REPO/blobs, snapshots/COMMIT,
refs/REVISION), so `huggingface_hub`, transformers and other tools read what is pulled here,
and Tokenscope finds what they pulled.

Every request has deadlines (tokenscope.lm.net): a listing ends within API_TOTAL_S; a file's
reads wait at most FILE_READ_S, and a file that brings less than STALL_BYTES in STALL_S is
given up (a server sending a byte a second); what came is kept, and the next pull resumes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tokenscope.escapes import printable
from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError, TokenscopeError
from tokenscope.lm.net import Call, Limits, NetError, open_call, parse_json

if TYPE_CHECKING:
    from tokenscope.lm.hub import HubRef

API_TOTAL_S = 60.0
API_READ_S = 30.0
#: the largest listing read (a repository of thousands of files lists in a few MB)
LISTING_BYTES = 32 * 2**20
#: the largest file that is not weights (Gemma's tokenizer.json is 33 MB)
SMALL_FILE_BYTES = 256 * 2**20
#: the largest file at all (the biggest GGUF files are ~250 GB)
LARGEST_FILE_BYTES = 2**40
FILE_READ_S = 60.0
HEADERS_S = 60.0
STALL_S, STALL_BYTES = 60.0, 64 * 1024
#: a dropped connection is resumed this many times in one pull, each time it brought bytes
RETRIES = 5
REDIRECTS = 5
PARTIAL = ".tokenscope-partial"

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = re.compile(r"^[^\x00-\x1f\x7f/\\:*?\"<>|]{1,255}$")


class DownloadCancelled(TokenscopeError):
    """The person stopped a download (what finished stays in the cache)."""


class HubAnswerError(ModelNotFoundError):
    """The Hub (or what answers at HF_ENDPOINT) sent something unusable or failed."""


# ----- names -------------------------------------------------------------------------------


def safe_name(name: Any) -> str | None:
    """`name` when it is a relative path of plain parts (no "..", no separators of another
    system, no control characters), else None."""
    if not isinstance(name, str) or not 0 < len(name) <= 1000:
        return None
    parts = name.split("/")
    if any(p in ("", ".", "..") or not _PART.match(p) for p in parts):
        return None
    return name


def _hex(value: Any, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.match(value) else None


def _size_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LARGEST_FILE_BYTES:
        return value
    return None


# ----- what the Hub says -------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    name: str  # checked: safe_name
    size: int
    sha256: str | None  # files kept with git-lfs (all weights): 64 hex digits
    blob_id: str | None  # the git blob id: 40 hex digits

    @property
    def blob(self) -> str | None:
        """The name of its blob in the cache, as the Hugging Face client names it."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class Listing:
    commit: str  # checked: 40 hex digits
    files: tuple[HubFile, ...]  # those whose names and numbers check out
    skipped: tuple[str, ...]  # names listed with something wrong (shown escaped)


def endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def _headers(for_hub: bool) -> dict[str, str]:
    from tokenscope import __version__

    headers = {"User-Agent": f"tokenscope/{__version__}", "Accept-Encoding": "identity"}
    if for_hub:
        from huggingface_hub import get_token

        token = get_token()
        if token and token.isascii() and token.isprintable():
            headers["Authorization"] = f"Bearer {token}"
    return headers


def api_json(path: str, ref: HubRef, params: dict[str, Any] | None = None,
             cancel: CancelToken | None = None) -> Any:  # fmt: skip
    """GET endpoint + path (the Hub's API), parsed; a clear error for any failure."""
    url = endpoint() + path
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    limits = Limits(total_s=API_TOTAL_S, read_s=API_READ_S)
    try:
        with open_call(url, headers=_headers(True), limits=limits, cancel=cancel) as call:
            _check_status(call, ref)
            raw = call.read(LISTING_BYTES, "a listing")
    except NetError as e:
        raise HubAnswerError(f"the Hub cannot be asked about {ref}: {e}") from None
    try:
        return parse_json(raw)
    except ValueError as e:
        raise HubAnswerError(f"the Hub answered {ref}'s listing with {e}") from None


def _check_status(call: Call, ref: HubRef, file: str | None = None) -> None:
    """Raise the clear error for an answer that is not a success (read the Hub's own code)."""
    response = call.response
    assert response is not None
    status = response.status
    if status < 400:
        return
    code = response.getheader("X-Error-Code") or ""
    try:
        body = call.read(8192, "an error").decode("utf-8", errors="replace")
    except NetError:
        body = ""
    shown = printable(response.getheader("X-Error-Message") or body.strip()[:200])
    if code == "GatedRepo" or (status == 403 and "gated" in body.lower()):
        raise ModelNotFoundError(
            f"{ref.repo} is gated: accept its licence on {ref.page} (signed in to Hugging Face), "
            "then log in here with `hf auth login` or set HF_TOKEN to a token of that account"
        )
    if code == "RevisionNotFound":
        raise ModelNotFoundError(f"{ref.repo} has no revision {ref.revision!r}")
    if code == "EntryNotFound":
        raise ModelNotFoundError(f"{ref.repo} has no file {file or ref.file or '(unnamed)'!r}")
    if code == "RepoNotFound" or status in (401, 404):
        raise ModelNotFoundError(
            f"{ref.repo} was not found on the Hub (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        )
    if status == 429:
        raise HubAnswerError(f"the Hub is busy (429: too many requests) for {ref}; try later")
    raise HubAnswerError(f"the Hub answered {status} for {ref}: {shown}")


def fetch_listing(ref: HubRef, cancel: CancelToken | None = None) -> Listing:
    """The commit `ref` names and the files there, each with its size and hashes."""
    path = f"/api/models/{ref.repo}"
    if ref.revision:
        path += "/revision/" + urllib.parse.quote(ref.revision, safe="")
    info = api_json(path, ref, {"blobs": "true"}, cancel)
    if not isinstance(info, dict):
        raise HubAnswerError(f"the Hub's listing of {ref} is not an object")
    commit = _hex(info.get("sha"), _COMMIT)
    if commit is None:
        shown = printable(repr(info.get("sha"))[:60])
        raise HubAnswerError(f"the Hub's listing of {ref} names no commit (sha: {shown})")
    siblings = info.get("siblings")
    if not isinstance(siblings, list):
        raise HubAnswerError(f"the Hub's listing of {ref} has no list of files")
    files, skipped = [], []
    for s in siblings:
        f = _hub_file(s)
        if f is None:
            name = s.get("rfilename") if isinstance(s, dict) else s
            skipped.append(printable(str(name)[:80]))
        else:
            files.append(f)
    return Listing(commit, tuple(files), tuple(skipped))


def _hub_file(sibling: Any) -> HubFile | None:
    """A listed file, or None when its name, size or hashes are not what they must be."""
    if not isinstance(sibling, dict):
        return None
    name = safe_name(sibling.get("rfilename"))
    lfs = sibling.get("lfs")
    if name is None or (lfs is not None and not isinstance(lfs, dict)):
        return None
    sha256 = None
    if lfs is not None:
        sha256 = _hex(lfs.get("sha256"), _SHA256)
        if sha256 is None:
            return None  # a weight file whose hash is not one cannot be checked: not taken
    size = _size_of(sibling.get("size"))
    if size is None and lfs is not None:
        size = _size_of(lfs.get("size"))
    if size is None:
        return None
    blob_id = sibling.get("blobId")
    if blob_id is not None and _hex(blob_id, _COMMIT) is None:
        return None
    return HubFile(name, size, sha256, blob_id)


# ----- the cache ---------------------------------------------------------------------------


def repo_folder(cache: Path, repo: str) -> Path:
    """models--ORG--REPO in the cache (`repo` was checked by parse_ref)."""
    return cache / ("models--" + repo.replace("/", "--"))


def _inside(folder: Path, path: Path) -> Path:
    """`path`, once sure it lies inside `folder` (a last check: names were checked before)."""
    if os.path.commonpath([os.path.abspath(folder), os.path.abspath(path)]) != str(
        os.path.abspath(folder)
    ):
        raise HubAnswerError(f"refused to write {printable(str(path))}: outside the cache")
    return path


def record_revision(folder: Path, revision: str, commit: str) -> None:
    """refs/REVISION holds the commit it names (how the cache finds `@revision` offline)."""
    if revision == commit or safe_name(revision) is None:
        return
    ref_file = _inside(folder, folder / "refs" / revision)
    ref_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = ref_file.with_name(ref_file.name + PARTIAL)
    temporary.write_text(commit)
    os.replace(temporary, ref_file)


def _link(folder: Path, commit: str, f: HubFile, blob: Path) -> Path:
    """snapshots/COMMIT/NAME pointing at the blob (a copy where links cannot be made)."""
    link = _inside(folder, folder / "snapshots" / commit / f.name)
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(blob, link.parent)
    if link.is_symlink() and os.readlink(link) == target:
        return link
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        os.symlink(target, link)
    except OSError:  # (Windows without the right to make links)
        shutil.copyfile(blob, link)
    return link


# ----- a file ------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a file's download stands, for the pull's progress and its cancel."""

    added: Callable[[int], None]  # bytes that arrived (a resumed file: what it had first)
    cancel: threading.Event | None


def fetch_file(ref: HubRef, cache: Path, commit: str, f: HubFile, progress: Progress) -> Path:
    """The file in the cache (downloaded, checked, linked into its snapshot); what a cancel
    or a failure leaves of a weight file is kept, and the next pull continues from it."""
    if f.sha256 is None and f.size > SMALL_FILE_BYTES:
        raise HubAnswerError(
            f"the Hub lists {f.name} of {ref} at {f.size:,} bytes; no such file is that large"
        )
    folder = repo_folder(cache, ref.repo)
    blob_name = f.blob
    blob = None if blob_name is None else _inside(folder, folder / "blobs" / blob_name)
    if blob is None or not _is_whole(blob, f.size):
        blob = _download(ref, folder, commit, f, progress)
    else:
        progress.added(f.size)
    return _link(folder, commit, f, blob)


def _is_whole(blob: Path, size: int) -> bool:
    try:
        return blob.is_file() and blob.stat().st_size == size
    except OSError:
        return False


def _download(ref: HubRef, folder: Path, commit: str, f: HubFile, progress: Progress) -> Path:
    from filelock import FileLock, Timeout

    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    # A file without a hash of its own in the listing is named by the SHA-256 of what came.
    stem = f.blob or ("unchecked-" + hashlib.sha256(f"{commit}/{f.name}".encode()).hexdigest())
    partial = _inside(folder, blobs / (stem + PARTIAL))
    _free_space_for(blobs, f, ref)
    lock = FileLock(str(partial) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ModelNotFoundError(
            f"{f.name} is being downloaded by another Tokenscope already; wait for it"
        ) from None
    try:
        url = f"{endpoint()}/{ref.repo}/resolve/{commit}/" + urllib.parse.quote(f.name, safe="/")
        with partial.open("ab") as out:
            if out.tell() > f.size:  # not this file: start again
                out.truncate(0)
            _receive(url, out, f, ref, progress)
        digest = _verify(partial, f, ref)
        blob = _inside(folder, blobs / (f.blob or digest))
        os.replace(partial, blob)
        return blob
    finally:
        lock.release()
        Path(str(partial) + ".lock").unlink(missing_ok=True)


def _free_space_for(folder: Path, f: HubFile, ref: HubRef) -> None:
    free = shutil.disk_usage(folder).free
    if f.size > free:
        raise ModelNotFoundError(
            f"{f.name} of {ref} needs {f.size / 2**30:.1f} GB and the cache's disk has "
            f"{free / 2**30:.1f} GB free ({folder.parent.parent})"
        )


def _verify(partial: Path, f: HubFile, ref: HubRef) -> str:
    """The file's SHA-256, once its size and hash are the listing's; a file that is not is
    removed, with a message."""
    size = partial.stat().st_size
    sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with partial.open("rb") as source:
        while block := source.read(1 << 22):
            sha256.update(block)
            git.update(block)
    digest = sha256.hexdigest()
    wrong = (
        size != f.size
        or (f.sha256 is not None and digest != f.sha256)
        or (f.sha256 is None and f.blob_id is not None and git.hexdigest() != f.blob_id)
    )
    if wrong:
        partial.unlink(missing_ok=True)
        raise ModelFormatError(
            f"{f.name} arrived damaged (its size or hash differs from the Hub's listing of "
            f"{ref}); it was removed: pull again"
        )
    return digest


def _receive(url: str, out: IO[bytes], f: HubFile, ref: HubRef, progress: Progress) -> None:
    """Append the rest of the file to `out`: from where it stands, resuming a dropped
    connection up to RETRIES times (each time it brought something)."""
    have = out.tell()
    progress.added(have)
    requests = 0
    while have < f.size:
        before = have
        requests += 1
        try:
            have = _one_request(url, out, have, f, ref, progress)
        except NetError as e:
            resumable = not e.expired and e.reason != "too large"
            if have > before and requests <= RETRIES and resumable:
                continue
            kept = "nothing was kept" if e.reason == "too large" else (
                "what came is kept: pull again to continue")  # fmt: skip
            raise HubAnswerError(
                f"{f.name} of {ref} could not be downloaded ({e}); {kept}"
            ) from None
        if have == before or requests > RETRIES:
            break
    if have < f.size:
        raise HubAnswerError(
            f"the Hub ended {f.name} of {ref} after {have:,} of its {f.size:,} bytes; what "
            "came is kept: pull again to continue"
        )


def _one_request(
    url: str, out: IO[bytes], have: int, f: HubFile, ref: HubRef, progress: Progress
) -> int:
    """One GET (following redirects), its body appended to `out`; the bytes now held."""
    call = _open_following(url, have, ref, f, progress.cancel)
    with call:
        response = call.response
        assert response is not None
        if have and response.status == 200:  # the server ignored the Range: from the start
            out.seek(0)
            out.truncate(0)
            progress.added(-have)
            have = 0
        left = f.size - have
        declared = call.declared_length()
        if declared is not None and declared > left:  # not the listed file: start again
            out.seek(0)
            out.truncate(0)
            raise NetError(
                f"{call.host} declares {declared:,} bytes for {f.name}, more than the "
                f"{left:,} its listing leaves",
                "too large",
            )
        window_start, window_bytes = time.monotonic(), 0
        for chunk in call.chunks(1 << 20):
            if len(chunk) > f.size - have:  # not the listed file: none of it is kept
                out.seek(0)
                out.truncate(0)
                raise NetError(
                    f"{call.host} sent more than the {f.size:,} bytes the listing gives {f.name}",
                    "too large",
                )
            out.write(chunk)
            have += len(chunk)
            progress.added(len(chunk))
            if progress.cancel is not None and progress.cancel.is_set():
                out.flush()
                raise DownloadCancelled("the download was cancelled")
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= STALL_S:
                if window_bytes < STALL_BYTES:
                    raise NetError(
                        f"{call.host} sent {window_bytes:,} bytes of {f.name} in the last "
                        f"{STALL_S:g} s: too slow to finish",
                        "expired",
                    )
                window_start, window_bytes = now, 0
    return have


def _open_following(
    url: str, have: int, ref: HubRef, f: HubFile, cancel: threading.Event | None
) -> Call:
    """GET `url` from byte `have`, following the Hub's redirects (to its storage) up to
    REDIRECTS; the token goes only to the Hub's own host."""
    hub_host = urllib.parse.urlsplit(endpoint()).netloc
    for _ in range(REDIRECTS + 1):
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("the download was cancelled")
        host = urllib.parse.urlsplit(url).netloc
        headers = _headers(for_hub=host == hub_host)
        if have:
            headers["Range"] = f"bytes={have}-"
        # The headers within HEADERS_S; the body's time is then watched per chunk (STALL_S).
        limits = Limits(total_s=HEADERS_S, read_s=FILE_READ_S)
        call = open_call(url, headers=headers, limits=limits)
        response = call.response
        assert response is not None
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location") or ""
            call.close()
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise NetError(f"{host} redirected {f.name} to {printable(location[:100])!r}")
            continue
        try:
            _check_status(call, ref, f.name)  # (an error's body within the same deadline)
        except BaseException:
            call.close()
            raise
        call.pause()
        return call
    raise NetError(f"the Hub redirected {f.name} more than {REDIRECTS} times")
