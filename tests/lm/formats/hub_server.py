"""A Hugging Face Hub on the loopback address, for the download tests.

It answers the requests `huggingface_hub` makes, in the Hub's URL layout, for repositories the
tests build (point HF_ENDPOINT at `server.url`):

    GET  /api/models/ORG/REPO[/revision/REV]  the repository's listing (files, sizes, sha256)
    GET  /api/models/ORG/REPO/refs            its branches (revisions)
    GET  /api/models?search=...               search results
    HEAD /ORG/REPO/resolve/REV/FILE           a file's commit, ETag and size
    GET  /ORG/REPO/resolve/REV/FILE           its bytes (Range requests answered with 206)

and misbehaves on request: a gated repository answers 401 with GatedRepo, an unknown one 404,
a file in `drop_once` is cut off two thirds of the way the first time it is sent, a file in
`corrupt` is sent with other bytes than its listed SHA-256; `throttle` slows file bodies;
`file_headers` and `edit_listing` put hostile headers and values in what is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


@dataclass
class Repo:
    revisions: dict[str, dict[str, bytes]]  # revision name -> file name -> bytes
    gated: bool = False
    tags: list[str] = field(default_factory=list)
    parameters: int | None = None

    def commit(self, revision: str) -> str:
        return hashlib.sha1(f"{id(self)}:{revision}".encode()).hexdigest()


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.drop_once: set[str] = set()
        self.corrupt: set[str] = set()
        self.throttle: int | None = None  # bytes a second for file bodies, None: at once
        self.file_headers: dict[str, str] = {}  # put over every file's headers (hostile ones)
        self.edit_listing = None  # a function changing each listing before it is sent
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_folder(self, repo: str, revision: str, folder: Path, **kwargs) -> None:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        self.add(repo, revision, files, **kwargs)

    def add(self, repo: str, revision: str, files: dict[str, bytes], **kwargs) -> None:
        entry = self.repos.setdefault(repo, Repo({}, **kwargs))
        entry.revisions[revision] = files

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----- lookups ---------------------------------------------------------------------------

    def find(self, repo: str, revision: str) -> tuple[Repo | None, str | None]:
        entry = self.repos.get(repo)
        if entry is None:
            return None, None
        for name in entry.revisions:
            if revision in (name, entry.commit(name)):
                return entry, name
        return entry, None

    def listing(self, repo: str, entry: Repo, revision: str) -> dict:
        siblings = []
        for name, data in entry.revisions[revision].items():
            item = {"rfilename": name, "size": len(data), "blobId": _git_sha(data)}
            if name.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                item["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
            siblings.append(item)
        return {
            "id": repo,
            "sha": entry.commit(revision),
            "private": False,
            "gated": "manual" if entry.gated else False,
            "tags": entry.tags,
            "siblings": siblings,
        }


def _git_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self._send(
                status, body, {"X-Error-Code": code, "X-Error-Message": message,
                               "Content-Type": "application/json"}
            )  # fmt: skip

        def do_HEAD(self) -> None:
            with hub._lock:
                hub.requests.append((self.command, urlparse(self.path).path, None))
            self._resolve()

        def do_GET(self) -> None:
            url = urlparse(self.path)
            with hub._lock:
                hub.requests.append((self.command, url.path, self.headers.get("Range")))
            if url.path == "/api/models":
                return self._search(parse_qs(url.query))
            match = re.match(r"^/api/models/([^/]+/[^/]+)/refs$", url.path)
            if match:
                return self._refs(match.group(1))
            match = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", url.path)
            if match:
                return self._info(match.group(1), unquote(match.group(2) or "main"))
            return self._resolve()

        def _search(self, query: dict) -> None:
            words = (query.get("search") or [""])[0].lower()
            found = []
            for repo, entry in hub.repos.items():
                if words and words not in repo.lower():
                    continue
                item = {
                    "id": repo,
                    "downloads": 10 * len(found) + 7,
                    "gated": entry.gated,
                    "tags": entry.tags,
                    "usedStorage": sum(
                        len(d) for files in entry.revisions.values() for d in files.values()
                    ),
                }
                if entry.parameters:
                    item["safetensors"] = {"total": entry.parameters, "parameters": {}}
                found.append(item)  # fmt: skip
            self._send(200, json.dumps(found).encode(), {"Content-Type": "application/json"})

        def _refs(self, repo: str) -> None:
            entry = hub.repos.get(repo)
            if entry is None:
                return self._error(401, "RepoNotFound", "Repository not found")
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": entry.commit(name)}
                for name in entry.revisions
            ]
            body = json.dumps({"branches": branches, "converts": [], "tags": []}).encode()
            self._send(200, body, {"Content-Type": "application/json"})

        def _info(self, repo: str, revision: str) -> None:
            entry, name = hub.find(repo, revision)
            if entry is None:
                return self._error(401, "RepoNotFound", "Repository not found")
            if name is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            listing = hub.listing(repo, entry, name)
            if hub.edit_listing is not None:
                listing = hub.edit_listing(listing)
            body = json.dumps(listing).encode()
            self._send(200, body, {"Content-Type": "application/json"})

        def _resolve(self) -> None:
            match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", urlparse(self.path).path)
            if not match:
                return self._error(404, "EntryNotFound", "Not found")
            repo, revision, file = match.group(1), unquote(match.group(2)), unquote(match.group(3))
            entry, name = hub.find(repo, revision)
            if entry is None:
                return self._error(401, "RepoNotFound", "Repository not found")
            if name is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if entry.gated and "authorization" not in {k.lower() for k in self.headers}:
                return self._error(
                    401, "GatedRepo", f"Access to model {repo} is restricted: accept its terms"
                )
            data = entry.revisions[name].get(file)
            if data is None:
                return self._error(404, "EntryNotFound", f"{file} does not exist")
            lfs = file.endswith(LFS_SUFFIXES)
            etag = hashlib.sha256(data).hexdigest() if lfs else _git_sha(data)
            headers = {"X-Repo-Commit": entry.commit(name), "ETag": f'"{etag}"',
                       "Accept-Ranges": "bytes", **hub.file_headers}  # fmt: skip
            if file in hub.corrupt:
                data = bytes(b ^ 0x55 for b in data[:64]) + data[64:]
            start = 0
            ranged = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if ranged and self.command == "GET":
                start = int(ranged.group(1))
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            if self.command == "GET" and file in hub.drop_once and start == 0:
                hub.drop_once.discard(file)
                # Promise the whole file, send two thirds of it, hang up.
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: 2 * len(body) // 3])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if hub.throttle and self.command == "GET":
                return self._send_slowly(206 if start else 200, body, headers)
            self._send(206 if start else 200, body, headers)

        def _send_slowly(self, status: int, body: bytes, headers: dict) -> None:
            import time

            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            piece = 256 * 1024
            try:
                for at in range(0, len(body), piece):
                    self.wfile.write(body[at : at + piece])
                    time.sleep(piece / hub.throttle)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
