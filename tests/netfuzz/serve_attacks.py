"""A client that attacks `tokenscope serve`: seeded hostile requests, sent as raw bytes.

    for attack in attacks("ci", 80, model="tiny"):
        status = send(port, attack)          # the HTTP status, "closed" or "hang"

Each attack is a correct request with one thing wrong: a value replaced anywhere in its JSON
body (numbers at the edges of floating point, lone surrogates, texts of megabytes, arrays
nested 100,000 deep), a body that is not JSON or not UTF-8, a length that lies, a body that
never stops, headers too long or too many or one byte at a time.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from net_cases import DEEP, dumps, mutate

SERVE_VALUES = [
    None, True, -1, 0, 1.5, 2**62, 10**30, -(10**30), 1e-308, 1e308, -1e308, 5e-324, 1e-45,
    float("inf"), float("nan"), "x", "", "\ud800", "a\udcffb", [], {}, [None], [[1, 2], []],
    "\x1b[2J" * 10, "x" * 10_000_000, list(range(200_000)), DEEP, {"$ref": "#"},
]  # fmt: skip


@dataclass
class Attack:
    what: str
    data: bytes  # the whole request
    malformed: bool = False  # not HTTP as it should be: a 4xx or a closed connection is right
    drip_s: float = 0.0  # send a byte every this many seconds (for a while), then give up
    hang_up: bool = False  # stop sending (half-close) once the bytes are sent


def _request(path: str, body: bytes | None, headers: dict[str, str] | None = None) -> bytes:
    method = "GET" if body is None else "POST"
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", "Connection": "close",
            **(headers or {})}  # fmt: skip
    if body is not None and "Content-Length" not in head and "Transfer-Encoding" not in head:
        head["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    return "\r\n".join(lines).encode() + (body or b"")


def _bases(model: str) -> list[tuple[str, dict]]:
    return [
        ("/v1/completions", {"model": model, "prompt": "The capital of", "max_tokens": 4,
                             "logprobs": 2, "temperature": 0.7, "seed": 3}),
        ("/v1/completions", {"model": model, "prompt": ["a b", [1, 2, 3]], "max_tokens": 3,
                             "stream": True, "stop": ["\n"], "n": 2, "echo": True,
                             "logprobs": 1}),
        ("/v1/completions", {"model": model, "prompt": "a b c", "max_tokens": 0, "echo": True,
                             "logprobs": 1, "top_p": 0.9, "top_k": 5, "min_p": 0.01,
                             "repetition_penalty": 1.1}),
        ("/v1/chat/completions", {"model": model, "max_tokens": 3, "logprobs": True,
                                  "top_logprobs": 2,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/tokenize", {"model": model, "prompt": "hello there", "add_special_tokens": True}),
        ("/detokenize", {"model": model, "tokens": [1, 2, 3]}),
    ]  # fmt: skip


def attacks(seed: str, count: int, model: str) -> Iterator[Attack]:
    rng = random.Random(seed)
    bases = _bases(model)
    for _ in range(count):
        path, body = rng.choice(bases)
        roll = rng.random()
        if roll < 0.7:
            times = rng.randint(1, 3)
            yield Attack(f"{path} with {times} values replaced",
                         _request(path, dumps(mutate(body, rng, SERVE_VALUES, times))))  # fmt: skip
            continue
        kind = rng.choice(["not-json", "not-utf8", "short-length", "huge-length", "chunked-huge",
                           "long-header", "many-headers", "drip", "bad-method", "bad-path",
                           "deep-json", "empty"])  # fmt: skip
        good = json.dumps(body).encode()
        if kind == "not-json":
            yield Attack(kind, _request(path, b"{not json" + good))
        elif kind == "not-utf8":
            yield Attack(kind, _request(path, good.replace(b'"', b'"\xff\xfe', 1)))
        elif kind == "short-length":  # promises more than it sends, then hangs up
            promise = {"Content-Length": str(len(good) + 100)}
            yield Attack(kind, _request(path, good, promise), hang_up=True)
        elif kind == "huge-length":
            yield Attack(kind, _request(path, good, {"Content-Length": str(10**15)}))
        elif kind == "chunked-huge":
            piece = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
            head = _request(path, b"", {"Transfer-Encoding": "chunked"})
            yield Attack(kind, head + piece * 40 + b"0\r\n\r\n", malformed=True)
        elif kind == "long-header":
            yield Attack(kind, _request(path, good, {"X-Long": "a" * 200_000}), malformed=True)
        elif kind == "many-headers":
            many = {f"X-{i}": "1" for i in range(2000)}
            yield Attack(kind, _request(path, good, many), malformed=True)
        elif kind == "drip":
            yield Attack(kind, _request(path, good), malformed=True, drip_s=0.05)
        elif kind == "bad-method":
            yield Attack(kind, _request(path, good).replace(b"POST", b"BR\x1bW", 1), True)
        elif kind == "bad-path":
            yield Attack(kind, _request("/v1/../../etc/passwd%00\x1b", good), malformed=True)
        elif kind == "deep-json":
            yield Attack(kind, _request(path, dumps({**body, "prompt": DEEP})))
        else:
            yield Attack(kind, _request(path, b""))


def send(port: int, attack: Attack, timeout: float = 20.0) -> tuple[str, bytes]:
    """Send the attack; (the answer's status, or "closed" / "hang", and the start of its body)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        return f"no connection ({e})", b""
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        try:
            if attack.drip_s:
                for i in range(min(len(attack.data), int(2.0 / attack.drip_s))):
                    sock.sendall(attack.data[i : i + 1])
                    time.sleep(attack.drip_s)
                return "gave up dripping", b""
            sock.sendall(attack.data)
            if attack.hang_up:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server stopped reading: its answer (if any) tells why
        answer = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return "hang", answer[:300]
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
            if len(answer) > 4 << 20:
                break
        else:
            return "hang", answer[:300]
        if not answer.startswith(b"HTTP/1.1 "):
            return "closed", answer[:300]
        return answer[9:12].decode(), answer.split(b"\r\n\r\n", 1)[-1][:300]
    finally:
        sock.close()
