"""Seeded hostile cases for the network: a Hub and a model server that lie, stall, flood and
try to make the client write outside its cache (issue 27).

    case = hub_case("ci:hub:17", outside=Path(...))     # .action, .script, .what
    case = remote_case("ci:remote:3")

Each case is a baseline server that answers correctly, with one attack on one route: a value
replaced anywhere in a JSON answer, names that walk out of the cache, bodies too long, too
short or endless, a byte now and then, silence, malformed status lines, redirects. The same
seed always makes the same case.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hostile import Request, Writer, drip, forever, raw, respond, silent, stream

DEEP = "__DEEP__"
REPO, GGUF = "acme/m", "m.gguf"
CONFIG = {"model_type": "llama", "vocab_size": 64, "hidden_size": 32,
          "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
          "max_position_embeddings": 64}  # fmt: skip
ESCAPES = "\x1b[2J\x1b]0;pwned\x07\r\nX-Injected: 1"


def hostile_values(outside: str) -> list[Any]:
    return [
        None, True, False, -1, 0, 1.5, 2**70, -(2**70), float("inf"), float("-inf"),
        float("nan"), 700, "x", "", [], {}, [None], {"a": 1}, [1.5], ["x"] * 3, ESCAPES,
        "../../../outside/pwned", f"{outside}/pwned-abs", "/etc/hostname", "a" * 300_000,
        "\ud800", DEEP, [[[]]], 1e308, -1e-308,
    ]  # fmt: skip


def dumps(value: Any) -> bytes:
    """JSON, where DEEP becomes an array nested 100,000 deep (no encoder writes that)."""
    text = json.dumps(value)
    return text.replace(f'"{DEEP}"', "[" * 100_000 + "]" * 100_000).encode(
        "utf-8", errors="surrogatepass"
    )


def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*at, i))
    return out


def mutate(value: Any, rng: random.Random, values: list[Any], times: int = 1) -> Any:
    """`value` with `times` places replaced by a hostile value (or a key removed)."""
    value = json.loads(json.dumps(value))
    for _ in range(times):
        path = rng.choice(_paths(value))
        if not path:
            return copy.deepcopy(rng.choice(values))
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.15:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(values))
    return value


def malformed_status(rng: random.Random) -> bytes:
    return rng.choice([
        b"HTTP/1.1 2\x1b[31m00 OK\r\n\r\n{}",
        b"garbage\nmore\x1b[2J\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n{}",
        b"HTTP/1.1 999 \x1b]0;title\x07\r\nContent-Length: 2\r\n\r\n{}",
        b"\x00\xff\xfe binary",
        b"",
    ])  # fmt: skip


def transport_attack(rng: random.Random, status_ok: Callable[[], Writer]) -> tuple[str, Writer]:
    """Something wrong with the answer as HTTP, whatever it should have held."""
    kind = rng.choice(["malformed", "lying-length", "endless", "endless-chunked", "close",
                       "silent", "header-drip", "error-escapes", "huge"])  # fmt: skip
    if kind == "malformed":
        return kind, raw(malformed_status(rng))
    if kind == "lying-length":
        return kind, respond(200, b"{}", length=10**15)
    if kind == "endless":
        return kind, stream(200, forever(b"a" * 65536), {"Content-Type": "application/json"})
    if kind == "endless-chunked":
        return kind, stream(200, forever(b"[" * 4096), chunked=True)
    if kind == "close":
        return kind, raw(b"")
    if kind == "silent":
        return kind, silent()
    if kind == "header-drip":
        return kind, drip(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n{}", 0.05)
    if kind == "error-escapes":
        status = rng.choice([400, 401, 403, 404, 429, 500, 503])
        body = {"error": {"message": ESCAPES * 3}}
        return kind, respond(status, body, {"X-Error-Message": ESCAPES.replace("\r\n", " ")})
    big = (b" " * (1 << 20) for _ in range(70))
    return kind, stream(200, big, {"Content-Type": "application/json"})


# ----- the Hub -------------------------------------------------------------------------------


@dataclass
class Case:
    action: str
    script: Callable[[Request], Writer]
    what: str
    expect: dict[str, Any]  # what a correct result holds (files and their bytes, ...)


def _git_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    """The correct Hub the attacks start from: one repository with a GGUF file and a folder."""

    def __init__(self, rng: random.Random) -> None:
        self.files = {
            GGUF: rng.randbytes(rng.choice([1000, 200_000])),
            "config.json": json.dumps(CONFIG).encode(),
            "model.safetensors": rng.randbytes(50_000),
            "tokenizer.json": b'{"model": {}}',
        }
        self.commit = hashlib.sha1(rng.randbytes(8)).hexdigest()

    def listing(self) -> dict:
        siblings = []
        for name, data in self.files.items():
            item: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": _git_sha(data)}
            if name.endswith((".gguf", ".safetensors")):
                item["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            siblings.append(item)
        siblings.append({"rfilename": "README.md", "size": 3, "blobId": "0" * 40})
        return {"id": REPO, "sha": self.commit, "gated": False, "siblings": siblings}

    def refs(self) -> dict:
        return {"branches": [{"name": "main", "targetCommit": self.commit},
                             {"name": "step100", "targetCommit": self.commit}],
                "tags": [], "converts": []}  # fmt: skip

    def search(self) -> list:
        return [{"id": REPO, "downloads": 5, "gated": False, "tags": ["license:mit", "gguf"],
                 "usedStorage": 123, "gguf": {"total": 1000, "architecture": "llama"}}]  # fmt: skip

    def file(self, request: Request, name: str, headers: dict[str, str] | None = None) -> Writer:
        data = self.files.get(name)
        if data is None:
            return respond(404, {"error": "no"}, {"X-Error-Code": "EntryNotFound"})
        start = 0
        match = re.match(r"bytes=(\d+)-", request.headers.get("range", ""))
        head = {"ETag": f'"{_git_sha(data)}"', "X-Repo-Commit": self.commit,
                "Content-Type": "application/octet-stream", **(headers or {})}  # fmt: skip
        if match:
            start = int(match.group(1))
            head["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return respond(206 if match else 200, data[start:], head)

    def route(self, request: Request) -> tuple[str, str | None]:
        """(which route, the file name for a download)."""
        path = request.path.split("?")[0]
        if path == "/api/models":
            return "search", None
        if path.endswith("/refs"):
            return "refs", None
        if path.startswith("/api/models/"):
            return "listing", None
        match = re.match(r"^/acme/m/resolve/[^/]+/(.+)$", path)
        if match:
            return "file", match.group(1)
        return "other", None

    def answer(self, request: Request) -> Writer:
        route, name = self.route(request)
        if route == "search":
            return respond(200, self.search())
        if route == "refs":
            return respond(200, self.refs())
        if route == "listing":
            return respond(200, self.listing())
        if route == "file" and name is not None:
            return self.file(request, name)
        return respond(404, {"error": "not found"}, {"X-Error-Code": "RepoNotFound"})


HUB_FAMILIES = ("listing-values", "listing-names", "file-headers", "file-body", "status",
                "redirect", "listing-transport", "refs-search")  # fmt: skip


def hub_case(seed: str, outside: str, other_server: str = "") -> Case:
    """One hostile Hub case. `outside`: a folder no file may reach; `other_server`: another
    host's address, for a redirect (it must never get the token)."""
    rng = random.Random(seed)
    hub = Hub(rng)
    values = hostile_values(outside)
    family = rng.choice(HUB_FAMILIES)
    # (an attack on files needs a pull to meet it)
    pulls = family.startswith(("file", "redirect", "status"))
    action = rng.choice(["pull-gguf", "pull-folder", *([] if pulls else ["choices"])])
    expect = {"files": hub.files, "commit": hub.commit}
    attack: Callable[[Request], Writer | None]
    traversals = ["../../../outside/pwned", f"{outside}/pwned-abs", "/etc/hostname",
                  "..", ".", "a/../../b", "sub\\..\\..\\x", "x\x00y", "A" * 64, "0" * 63,
                  "con:x", ESCAPES]  # fmt: skip

    if family == "listing-values":
        listing = mutate(hub.listing(), rng, values, rng.randint(1, 3))
        what = "a listing with values replaced"

        def attack(request: Request) -> Writer | None:
            return respond(200, dumps(listing)) if hub.route(request)[0] == "listing" else None
    elif family == "listing-names":
        listing = hub.listing()
        target = rng.choice(listing["siblings"][:3])
        field = rng.choice(["sha256", "sha", "rfilename", "blobId", "size"])
        value = rng.choice(traversals)
        if field == "sha256" and "lfs" in target:
            target["lfs"]["sha256"] = value
        elif field == "sha":
            listing["sha"] = value
        elif field == "size":
            target["size"] = rng.choice([-1, 2**62, "12", 10**30])
        else:
            target[field if field != "sha256" else "blobId"] = value
        what = f"a listing naming {field} {value!r:.40}"

        def attack(request: Request) -> Writer | None:
            return respond(200, listing) if hub.route(request)[0] == "listing" else None
    elif family == "file-headers":
        headers = {"ETag": f'"{rng.choice(traversals)}"', "X-Repo-Commit": rng.choice(traversals),
                   "X-Linked-Etag": f'"{rng.choice(traversals)}"',
                   "Location": rng.choice(traversals)}  # fmt: skip
        what = f"files whose headers name {headers['ETag']!r:.40}"

        def attack(request: Request) -> Writer | None:
            route, name = hub.route(request)
            return hub.file(request, name, headers) if route == "file" and name else None
    elif family == "file-body":
        kind = rng.choice(["short", "long", "endless", "lying", "wrong-bytes", "no-range",
                           "drip", "silent-body", "silent", "chunked-endless"])  # fmt: skip
        what = f"file bodies: {kind}"
        dropped: set[str] = set()

        def attack(request: Request) -> Writer | None:
            route, name = hub.route(request)
            if route != "file" or name is None:
                return None
            data = hub.files.get(name, b"")
            if kind == "short":
                return respond(200, data[: len(data) // 2], length=len(data))
            if kind == "long":
                return respond(200, data + rng.randbytes(5000))
            if kind == "endless":
                return stream(200, forever(rng.randbytes(65536)), {})
            if kind == "lying":
                return respond(200, data, length=10**15)
            if kind == "wrong-bytes":
                return respond(200, bytes(b ^ 1 for b in data))
            if kind == "no-range":  # cut the first time, then ignore the Range asked for
                if name not in dropped:
                    dropped.add(name)
                    return respond(200, data[: len(data) // 3], length=len(data))
                return respond(200, data)
            if kind == "drip":
                return stream(200, (data[i : i + 1] for i in range(len(data))), delay=0.2,
                              length=len(data))  # fmt: skip
            if kind == "silent-body":
                return stream(200, iter([data[:10]]), length=len(data), delay=3600)
            if kind == "silent":
                return silent()
            return stream(200, forever(b"x" * 4096), chunked=True)
    elif family == "status":
        route_name = rng.choice(["listing", "file"])
        kind, writer = transport_attack(rng, lambda: respond(200, {}))
        code = rng.choice(["GatedRepo", "RepoNotFound", "RevisionNotFound", "EntryNotFound", ""])
        if rng.random() < 0.3:
            writer = respond(rng.choice([401, 403, 404, 429, 500]), ESCAPES.encode(),
                             {"X-Error-Code": code, "X-Error-Message": "bad\x1b[2J"})  # fmt: skip
            kind = f"status with code {code!r}"
        what = f"{route_name}: {kind}"

        def attack(request: Request) -> Writer | None:
            return writer if hub.route(request)[0] == route_name else None
    elif family == "redirect":
        kind = rng.choice(["loop", "file-scheme", "ftp", "other-host", "relative-loop",
                           "escapes"])  # fmt: skip
        what = f"redirects: {kind}"

        def attack(request: Request) -> Writer | None:
            route, name = hub.route(request)
            if route != "file" or name is None:
                return None
            target = {
                "loop": request.path,
                "file-scheme": "file:///etc/passwd",
                "ftp": "ftp://127.0.0.1/x",
                "other-host": f"{other_server}/acme/m/resolve/{hub.commit}/{name}",
                "relative-loop": "./" + name.rsplit("/", 1)[-1],
                "escapes": "/x\x1b[2J",
            }[kind]
            return respond(302, b"", {"Location": target})
    elif family == "listing-transport":
        kind, writer = transport_attack(rng, lambda: respond(200, {}))
        if rng.random() < 0.3:
            kind, writer = "deep JSON", respond(200, dumps(DEEP))
        what = f"listing: {kind}"

        def attack(request: Request) -> Writer | None:
            return writer if hub.route(request)[0] == "listing" else None
    else:
        which = rng.choice(["refs", "search"])
        action = "revisions" if which == "refs" else "search"
        base = hub.refs() if which == "refs" else hub.search()
        answer = mutate(base, rng, [*values, *traversals], rng.randint(1, 3))
        what = f"{which} with values replaced"

        def attack(request: Request) -> Writer | None:
            return respond(200, dumps(answer)) if hub.route(request)[0] == which else None

    def script(request: Request) -> Writer:
        return attack(request) or hub.answer(request)

    return Case(action, script, f"{family}: {what}", expect)


def other_host_script(hub_seed: str) -> Callable[[Request], Writer]:
    """The other host a redirect points at: the right bytes (it logs every request)."""
    hub = Hub(random.Random(hub_seed))

    def script(request: Request) -> Writer:
        route, name = hub.route(request)
        return hub.file(request, name) if route == "file" and name else respond(404, {})

    return script


# ----- a model server ------------------------------------------------------------------------


def _event(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish,
                         "logprobs": {"tokens": [text], "token_logprobs": [-0.5],
                                      "top_logprobs": [{text: -0.5, " b": -1.5}],
                                      "text_offset": [0]}}]}  # fmt: skip


class ModelServer:
    """The correct OpenAI-style server the attacks start from (one model, "m")."""

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 64}]}

    def completion(self, body: dict) -> dict:
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else "ab"
        if body.get("echo"):
            tokens = [*prompt, " c"]
            logprobs = {"tokens": tokens, "token_logprobs": [None] + [-1.0] * (len(tokens) - 1),
                        "top_logprobs": [None] + [{t: -1.0} for t in tokens[1:]],
                        "text_offset": list(range(len(tokens)))}  # fmt: skip
            return {
                "id": "x",
                "choices": [
                    {
                        "index": 0,
                        "text": prompt + " c",
                        "logprobs": logprobs,
                        "finish_reason": "length",
                    }
                ],
            }
        return {"id": "x", **_event(" a", "length")}

    def events(self, body: dict) -> list[bytes]:
        n = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 3
        out = [b"data: " + json.dumps(_event(f" t{i}")).encode() + b"\n\n" for i in range(n)]
        out.append(b"data: " + json.dumps(_event("", "length")).encode() + b"\n\n")
        return [*out, b"data: [DONE]\n\n"]

    def route(self, request: Request) -> str:
        path = request.path.split("?")[0]
        if path == "/v1/models":
            return "models"
        if path == "/v1/completions":
            body = request.json()
            return "stream" if isinstance(body, dict) and body.get("stream") else "completion"
        return path

    def answer(self, request: Request) -> Writer:
        route = self.route(request)
        body = request.json() if isinstance(request.json(), dict) else {}
        if route == "models":
            return respond(200, self.models())
        if route == "completion":
            return respond(200, self.completion(body))
        if route == "stream":
            return stream(200, iter(self.events(body)))
        return respond(404, {"error": {"message": "not found"}})


REMOTE_FAMILIES = ("answer-values", "event-values", "stream-abuse", "models", "transport",
                   "kinds")  # fmt: skip


def remote_case(seed: str) -> Case:
    rng = random.Random(seed)
    server = ModelServer()
    values = hostile_values("/nonexistent")
    family = rng.choice(REMOTE_FAMILIES)
    action = rng.choice(["predict", "generate", "score", "models"])
    attack: Callable[[Request], Writer | None]
    if family == "answer-values":
        times = rng.randint(1, 3)
        what = f"completions with {times} values replaced"

        def attack(request: Request) -> Writer | None:
            if server.route(request) != "completion":
                return None
            body = request.json() if isinstance(request.json(), dict) else {}
            return respond(200, dumps(mutate(server.completion(body), rng, values, times)))
    elif family == "event-values":
        action = "generate"
        what = "a stream with an event's values replaced"

        def attack(request: Request) -> Writer | None:
            if server.route(request) != "stream":
                return None
            events = server.events(request.json())
            at = rng.randrange(len(events) - 1)
            event = json.loads(events[at][6:])
            events[at] = b"data: " + dumps(mutate(event, rng, values)) + b"\n\n"
            return stream(200, iter(events))
    elif family == "stream-abuse":
        action = "generate"
        kind = rng.choice(["no-end", "blank-flood", "long-line", "drip", "silent-mid",
                           "close-mid", "not-json", "deep", "comments"])  # fmt: skip
        what = f"streams: {kind}"

        def attack(request: Request) -> Writer | None:
            if server.route(request) != "stream":
                return None
            first = server.events(request.json())[0]
            pieces: Any = {
                "no-end": forever(first),
                "blank-flood": forever(b"\n"),
                "long-line": iter([first, b"data: " + b"x" * (2 << 20) + b"\n\n"]),
                "drip": (bytes([c]) for c in first * 3),
                "silent-mid": iter([first]),
                "close-mid": iter([first, b'data: {"choi']),
                "not-json": iter([b"data: {nope\n\n"]),
                "deep": iter([b"data: " + dumps(DEEP) + b"\n\n"]),
                "comments": forever(b": keep-alive\n\n"),
            }[kind]
            delay = {"drip": 0.2, "silent-mid": 3600.0}.get(kind, 0.0)
            return stream(200, pieces, delay=delay)
    elif family == "models":
        listing = mutate(server.models(), rng, values, rng.randint(1, 2))
        if rng.random() < 0.3:
            listing = {"data": [{"id": ESCAPES + str(i)} for i in range(rng.choice([2, 50_000]))]}
        what = "a model listing with values replaced"

        def attack(request: Request) -> Writer | None:
            return respond(200, dumps(listing)) if server.route(request) == "models" else None
    elif family == "transport":
        route_name = rng.choice(["models", "completion", "stream"])
        kind, writer = transport_attack(rng, lambda: respond(200, {}))
        what = f"{route_name}: {kind}"

        def attack(request: Request) -> Writer | None:
            return writer if server.route(request) == route_name else None
    else:
        which = rng.choice(["/tokenscope", "/props"])
        body = {"/tokenscope": {"max_logprobs": rng.choice([10**12, -5, "x", 0, 2**62])},
                "/props": {"default_generation_settings": rng.choice([{}, "x", None]),
                           "n_vocab": 2**62}}[which]  # fmt: skip
        models = server.models()
        models["data"][0]["meta"] = {"n_vocab": rng.choice([2**62, -1, 10**9, "x"]),
                                     "n_ctx": rng.choice([2**62, 0, 1.5])}  # fmt: skip
        what = f"{which} answering {body!r:.60}"

        def attack(request: Request) -> Writer | None:
            if request.path.split("?")[0] == which:
                return respond(200, body)
            if server.route(request) == "models":
                return respond(200, models)
            return None

    def script(request: Request) -> Writer:
        return attack(request) or server.answer(request)

    return Case(action, script, f"{family}: {what}", {})
