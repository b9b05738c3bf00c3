"""Model servers for tests: llama.cpp's own server (xllamacpp, in this process) on the
SmolLM2 file, and a small local server that lists one model and then misbehaves as told."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tokenscope.lm.registry import known_model_path


def llama_server(n_ctx: int = 1024):
    """(the running server, its /v1 address): llama.cpp's own server (xllamacpp) on
    SmolLM2-135M with one thread, in a process of its own as a real server is (a fault in it
    cannot take the tests down). Keep the returned object alive while the server is used;
    `.stop()` ends it."""
    path = known_model_path("smollm2-135m")
    assert path is not None, "SmolLM2 is not installed: run `tokenscope models pull smollm2-135m`"
    return _ServerProcess(path, n_ctx).start()


_SERVE = """
import sys, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx = int(sys.argv[2])
params.cpuparams.n_threads = 1
server = xllamacpp.Server(params)
print("LISTENING " + server.listening_address, flush=True)
sys.stdin.read()  # until the tests close the pipe
"""


class _ServerProcess:
    def __init__(self, path, n_ctx: int) -> None:
        self.args = [sys.executable, "-c", _SERVE, str(path), str(n_ctx)]
        self.proc: subprocess.Popen | None = None

    def start(self):
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        for line in self.proc.stdout:
            if line.startswith("LISTENING "):
                return self, line.split()[1].rstrip("/") + "/v1"
        raise RuntimeError(f"llama.cpp's server did not start (exit {self.proc.wait()})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __del__(self) -> None:
        self.stop()


class FaultyServer:
    """An OpenAI-style server that lists one model and then misbehaves as `mode` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.echo = False
        self.key: str | None = None  # when set, every request needs "Bearer <key>"
        self.seen_keys: list[str] = []  # the Authorization headers received
        self.release = threading.Event()
        self.holding = threading.Event()  # mode "slow" has a request waiting
        self.words: dict[str, int] = {}  # mode "topk": its vocabulary, word by word
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (cancelled, timed out)

            def _refused(self) -> bool:
                given = self.headers.get("Authorization", "")
                owner.seen_keys.append(given)
                if owner.key is not None and given != f"Bearer {owner.key}":
                    self._send(401, b'{"error": {"message": "invalid api key"}}')
                    return True
                return False

            def do_GET(self) -> None:
                if self._refused():
                    return
                if self.path == "/v1/models":
                    return self._send(200, json.dumps({"data": [{"id": "tiny"}]}).encode())
                if self.path == "/version" and owner.mode == "topk":  # as vLLM answers
                    return self._send(200, b'{"version": "test"}')
                self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self._refused():
                    return
                mode = owner.mode
                if mode == "slow":
                    owner.holding.set()
                    owner.release.wait(30)  # a server that takes its time
                    return self._send(503, b'{"error": "too late"}')
                if mode == "max5" and body.get("logprobs", 0) > 5:  # as vLLM words it
                    message = f"Requested sample logprobs of {body['logprobs']}, which is greater "
                    return self._send(400, json.dumps({"error": {"message": message + (
                        "than max allowed: 5")}}).encode())  # fmt: skip
                if mode == "401":
                    return self._send(401, b'{"error": {"message": "invalid api key"}}')
                if mode == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "7"})
                if mode == "500":
                    return self._send(500, b'{"error": {"message": "CUDA out of memory"}}')
                if mode == "broken":
                    return self._send(200, b'{"choices": [ {"text": ')
                if mode == "nologprobs":
                    return self._send(200, json.dumps({"choices": [{"text": " x"}]}).encode())
                if mode == "topk":  # vLLM-like: shows its tokens (words), lists its top 2 only
                    if self.path == "/tokenize":
                        words = re.findall(r"\s*\S+|\s+", body["prompt"])
                        ids = [owner.words.setdefault(w, len(owner.words)) for w in words]
                        return self._send(200, json.dumps(
                            {"tokens": ids, "token_strs": words}).encode())  # fmt: skip
                    answer = {"choices": [{"text": " a", "logprobs": {"tokens": [" a"],
                              "top_logprobs": [{" a": -0.2, " b": -1.9}]}}]}  # fmt: skip
                    return self._send(200, json.dumps(answer).encode())
                if body.get("echo") and owner.echo:
                    # Words as tokens: the prompt's, each with a log-probability (the first
                    # none), then one generated token.
                    words = [*re.findall(r"\s*\S+", body["prompt"]), " end"]
                    offsets = [0]
                    for w in words[:-1]:
                        offsets.append(offsets[-1] + len(w))
                    values = [None] + [-0.5 * (i + 1) for i in range(len(words) - 1)]
                    # Each word is the top token where it stands, " zzz" second.
                    tops = [None] + [
                        {w: v, " zzz": v - 1.0} for w, v in zip(words[1:], values[1:], strict=True)
                    ]
                    answer = {"choices": [{"text": body["prompt"] + " end", "logprobs": {
                        "tokens": words, "token_logprobs": values, "text_offset": offsets,
                        "top_logprobs": tops}}]}  # fmt: skip
                    return self._send(200, json.dumps(answer).encode())
                if body.get("stream"):  # "cut": two tokens, then the connection drops
                    events = b"".join(
                        b"data: " + json.dumps({"choices": [{"text": t, "logprobs": {
                            "tokens": [t], "top_logprobs": [{t: -0.1, " y": -2.5}]}}]}).encode()
                        + b"\n\n" for t in (" a", " b")
                    )  # fmt: skip
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(events) + 1000))
                    self.end_headers()
                    self.wfile.write(events)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                answer = {"choices": [{"text": " a", "logprobs": {
                    "tokens": [" a"], "top_logprobs": [{" a": -0.2, " b": -1.9}]}}]}  # fmt: skip
                self._send(200, json.dumps(answer).encode())

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
