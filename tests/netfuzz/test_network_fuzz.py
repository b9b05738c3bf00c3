"""Hostile networks (issue 27): a Hub mirror and model servers that lie, stall and flood, and a
client that attacks `tokenscope serve`, all on the loopback address, seeded.

Every Hub and model-server case runs in a worker process (tests/netfuzz/net_worker.py) under a
wall-clock limit and a memory cap, and must end in a correct result or a TokenscopeError in
one printable line, with nothing written outside the cache and the Hub's token sent to no
other host. Every attack on `tokenscope serve` must be answered (never a 5xx, never a hang) or,
for what is not HTTP at all, have its connection closed, and the server must answer the next
client at once; its memory must stay bounded. More cases: benchmarks/net_fuzz_soak.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ..fuzz.fuzz_runner import describe, plan, problems, run_cases

# The cases are plain modules (the worker imports them by name): found from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_attacks import Attack, attacks, send

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resource limits: Linux"),
]

WORKER = Path(__file__).resolve().parent / "net_worker.py"
KINDS = ("hub", "remote")
CI_COUNTS = {"hub": 120, "remote": 120}
CAP_MB = 512
TIMEOUT_S = 30
SERVE_ATTACKS = 120
#: the serving process may grow by this much over all the attacks together
SERVE_GROWTH_MB = 400


def summary(results: list[dict]) -> list[dict]:
    rows = []
    for kind in (*KINDS, "all"):
        mine = [r for r in results if kind in ("all", r["kind"])]
        findings = problems(mine, CAP_MB)
        rows.append({
            "surface": kind, "tried": len(mine),
            "ok": sum(r["outcome"] == "ok" for r in mine),
            "clean": sum(r["outcome"] == "clean" for r in mine),
            "findings": len(findings),
            "peak_mb": max((r.get("peak_mb", 0) for r in mine), default=0),
            "slowest_s": max((r.get("seconds", 0) for r in mine), default=0),
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True))
              for r in rows]  # fmt: skip
    return "\n".join(lines)


def test_hostile_hubs_and_model_servers_end_in_a_clean_error_or_a_correct_result(tmp_path):
    run = run_cases(plan(CI_COUNTS, seed="ci"), work=tmp_path, timeout_s=TIMEOUT_S,
                    cap_mb=CAP_MB, worker_script=WORKER)  # fmt: skip
    results = run["results"]
    rows = summary(results)
    print("\n" + table(rows))
    findings = problems(results, CAP_MB)
    assert not findings, "\n".join(describe(r) for r in findings)
    for row in rows[:-1]:  # the cases reach both ends: some succeed, some are refused
        assert row["ok"] > 0 and row["clean"] > 0, row
    # The attacks that matter most were among them.
    whats = " ".join(r.get("what", "") for r in results)
    for attack in ("listing-names", "file-headers", "redirect", "stream-abuse", "transport"):
        assert attack in whats


# ----- tokenscope serve -------------------------------------------------------------------


class Served:
    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokenscope", "serve", "-m", str(folder), "--port", "0",
             "--dtype", "float32"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"no server: {line!r} {self.proc.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]
        self.port = int(self.url.split(":")[2].split("/")[0])
        self.name = line.split()[1]  # "serving NAME at URL"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/models", timeout=10) as answer:
                return bool(json.loads(answer.read())["data"])
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_model):
    folder = make_model("tiny").save(tmp_path_factory.mktemp("attacked") / "tiny")
    server = Served(folder)
    yield server
    server.stop()


def _finding(attack: Attack, status: str) -> str | None:
    if status.startswith("5") or status == "hang" or status.startswith("no connection"):
        return status
    if status == "closed" and not (attack.malformed or attack.hang_up):
        return "closed without an answer"
    return None


def test_tokenscope_serve_answers_every_attack_and_keeps_serving(served):
    name = served.name
    before = served.rss_mb()
    findings, seen = [], {}
    for attack in attacks("ci", SERVE_ATTACKS, name):
        status, body = send(served.port, attack)
        seen[status] = seen.get(status, 0) + 1
        problem = _finding(attack, status)
        if problem is None and not served.alive():
            problem = "the next client got no answer"
        if problem is not None:
            findings.append(f"{attack.what}: {problem} ({body[:200]!r})")
    grown = served.rss_mb() - before
    print(f"\nstatuses {seen}; memory {before:.0f} MB -> {before + grown:.0f} MB")
    assert not findings, "\n".join(findings)
    assert "400" in seen and "200" in seen  # both good and refused requests went through
    assert grown < SERVE_GROWTH_MB


def test_others_are_answered_while_one_client_sends_a_huge_prompt(served):
    """A 10 MB prompt is refused before it is tokenized; a 1M-character /tokenize (allowed)
    runs off the event loop: other clients are answered while it runs, and the memory it took
    is given back."""
    big = json.dumps(
        {"model": served.name, "prompt": "word " * 2_000_000, "max_tokens": 1}
    ).encode()
    request = urllib.request.Request(served.url + "/completions", big,
                                     {"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400 and "characters" in refused.value.read().decode()

    before = served.rss_mb()
    text = "word " * 199_000
    body = json.dumps({"model": served.name, "prompt": text}).encode()
    root = served.url.rsplit("/v1", 1)[0]
    done = threading.Event()
    answered_meanwhile = []

    def tokenize() -> None:
        ask = urllib.request.Request(root + "/tokenize", body,
                                     {"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(ask, timeout=120) as answer:
            assert json.loads(answer.read())["count"] > 100_000
        done.set()

    worker = threading.Thread(target=tokenize)
    worker.start()
    while not done.is_set() and worker.is_alive():
        if served.alive() and not done.is_set():
            answered_meanwhile.append(time.monotonic())
    worker.join()
    assert done.is_set()
    assert answered_meanwhile  # answered while the tokenizing went on
    assert served.rss_mb() - before < 64  # (given back: malloc_trim after a large request)


def test_a_body_beyond_the_bound_is_refused_before_it_is_read(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000000000000\r\n\r\n{")  # fmt: skip
        answer = b""
        while b"this server takes at most" not in answer:  # headers and body may come apart
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"this server takes at most" in answer
