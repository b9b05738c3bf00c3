"""Runs fuzz cases in a worker subprocess, with a wall-clock limit per case and a memory cap.

    results = run_cases(plan({"gguf": 100, ...}, seed="ci"), work=tmp_path)
    print(table(summarize(results)))

One worker (tests/fuzz/fuzz_worker.py) handles many cases in turn, so Python, torch and the
seed models start once, not once per case. This side sends a case, waits for its result line
and enforces the limits the worker cannot enforce on itself:

- a case that gives no answer within `timeout_s` is a **hang**: the worker is killed and a
  new one takes the remaining cases;
- a worker that dies during a case (a signal, e.g. an abort in native code) is a **crash**;
- memory: the worker caps its own private memory (RLIMIT_DATA) at what it uses when warm
  plus `cap_mb`, and reports each case's resident high-water mark; this side also sets a hard
  limit as a backstop and switches core dumps off.

Only the standard library is used here, so the runner can drive workers from any process.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

WORKER = Path(__file__).resolve().parent / "fuzz_worker.py"
KINDS = ("gguf", "safetensors", "config", "tokenizer", "special")
GOOD = ("clean", "loaded", "ok")  # ("ok": a correct result, for the network cases)
STARTUP_TIMEOUT_S = 300


class _Worker:
    """One worker process and the bytes read from it so far."""

    def __init__(self, work: Path, cap_mb: int, python: str, log: Path,
                 script: Path = WORKER) -> None:  # fmt: skip
        self.log = log
        log_file = open(log, "ab")  # noqa: SIM115  handed to the child, closed below
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [python, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=env,
            start_new_session=True,
        )
        log_file.close()
        try:  # a backstop above the worker's own cap, and no core files from crashes
            backstop = (cap_mb + 4096) * 2**20
            resource.prlimit(self.proc.pid, resource.RLIMIT_DATA, (backstop, backstop))
            resource.prlimit(self.proc.pid, resource.RLIMIT_CORE, (0, 0))
        except (AttributeError, OSError, ValueError):
            pass
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        setup = {"corpus": str(work / "corpus"), "work": str(work / "cases"), "cap_mb": cap_mb}
        self._send(setup)
        answer = self._receive(STARTUP_TIMEOUT_S)
        if not isinstance(answer, dict) or not answer.get("ready"):
            self.kill()
            raise RuntimeError(f"the fuzz worker did not start: {answer}; log:\n{self.tail()}")
        self.ready = answer

    def _send(self, message: dict) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def _receive(self, timeout: float) -> dict | str:
        """The next JSON line; "hang" after `timeout` seconds, "eof" if the worker ended."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hang"
            if not self.selector.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return "eof"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, case: dict, timeout: float) -> dict | str:
        try:
            self._send(case)
        except BrokenPipeError:
            return "eof"
        return self._receive(timeout)

    def ended(self) -> str:
        """How the worker ended: "signal SIGABRT", "exit status 1"."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit status {code}"

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and anything it started
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.close()

    def close(self) -> None:
        self.selector.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def plan(counts: dict[str, int], seed: str) -> list[dict]:
    """Cases for `counts` per kind, interleaved so that every kind is spread over the run."""
    queues = {kind: list(range(n)) for kind, n in counts.items()}
    cases: list[dict] = []
    while any(queues.values()):
        for kind, queue in queues.items():
            if queue:
                index = queue.pop(0)
                case = {"case": len(cases), "kind": kind, "seed": f"{seed}:{kind}:{index}"}
                cases.append(case)
    return cases


def run_cases(
    cases: Iterable[dict],
    *,
    work: Path,
    timeout_s: float = 20.0,
    cap_mb: int = 1024,
    python: str = sys.executable,
    on_result: Callable[[dict], None] | None = None,
    named: bool = False,
    worker_script: Path = WORKER,
) -> dict[str, Any]:
    """Run every case; returns {"results": [...], "workers": n, "baseline_mb": ..., ...}.

    With `named`, the named cases (every finding of issue 17's campaign, listed in
    fuzz_mutations.NAMED) run first.
    """
    work = Path(work)
    cases = list(cases)
    (work / "cases").mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    worker: _Worker | None = None
    starts, baseline, started = 0, 0.0, time.monotonic()
    try:
        if named:
            worker = _Worker(work, cap_mb, python, work / "worker.log", worker_script)
            starts, baseline = 1, worker.ready["baseline_mb"]
            first = [
                {"kind": kind, "seed": f"named:{name}"} for kind, name in worker.ready["named"]
            ]
            cases = [{**case, "case": i} for i, case in enumerate([*first, *cases])]
        for case in cases:
            if worker is None:
                worker = _Worker(work, cap_mb, python, work / "worker.log", worker_script)
                starts += 1
                baseline = max(baseline, worker.ready["baseline_mb"])
            began = time.monotonic()
            answer = worker.ask(case, timeout_s)
            if answer == "hang":
                time.sleep(1)  # (a worker may dump its threads' stacks when a case runs long)
                case = {**case, "where": worker.tail(40)}
                worker.kill()
                worker = None
                result = {**case, "outcome": "hang", "seconds": round(time.monotonic() - began, 1)}
            elif answer == "eof":
                how = worker.ended()
                result = {**case, "outcome": "crash", "message": how, "where": worker.tail()}
                worker.close()
                worker = None
            else:
                result = answer
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if worker is not None:
            worker.stop()
    return {
        "results": results,
        "workers": starts,
        "baseline_mb": baseline,
        "cap_mb": cap_mb,
        "seconds": round(time.monotonic() - started, 1),
    }


def problems(results: list[dict], cap_mb: int) -> list[dict]:
    """Every result that breaks the promise: not a clean error or a clean load, a clean error
    that does not name the file, or a case whose memory peak reached the cap."""
    bad = []
    for r in results:
        if r.get("outcome") not in GOOD:
            bad.append(r)
        elif r["outcome"] == "clean" and not r.get("names_file", True):
            bad.append({**r, "outcome": "unnamed file"})
        elif r.get("peak_mb", 0) >= cap_mb:
            bad.append({**r, "outcome": "runaway memory"})
    return bad


def summarize(results: list[dict], cap_mb: int, kinds: tuple[str, ...] = KINDS) -> list[dict]:
    """One row per file kind (and a total): the counts docs/reliability.md reports."""
    rows = []
    for kind in [*kinds, "all"]:
        mine = [r for r in results if kind == "all" or r["kind"] == kind]
        if not mine:
            continue
        bad = problems(mine, cap_mb)
        outcome = [r.get("outcome") for r in mine]
        rows.append(
            {
                "kind": kind,
                "tried": len(mine),
                "clean": outcome.count("clean"),
                "loaded": outcome.count("loaded"),
                "unexpected": sum(r["outcome"] in ("unexpected", "fuzzer error") for r in bad),
                "unnamed": sum(r["outcome"] == "unnamed file" for r in bad),
                "hangs": outcome.count("hang"),
                "crashes": outcome.count("crash"),
                "runaway": sum(r["outcome"] == "runaway memory" for r in bad),
                "peak_mb": max((r.get("peak_mb", 0) for r in mine), default=0),
                "slowest_s": max((r.get("seconds", 0) for r in mine), default=0),
            }
        )
    return rows


COLUMNS = [("kind", "file kind"), ("tried", "tried"), ("clean", "clean error"),
           ("loaded", "loaded"), ("unexpected", "unexpected"), ("unnamed", "unnamed"),
           ("hangs", "hangs"), ("crashes", "crashes"), ("runaway", "runaway mem"),
           ("peak_mb", "peak MB"), ("slowest_s", "slowest s")]  # fmt: skip


def table(rows: list[dict]) -> str:
    """A plain-text table of summarize()'s rows."""
    widths = [max(len(title), *(len(str(r[key])) for r in rows)) for key, title in COLUMNS]
    lines = ["  ".join(title.rjust(w) for (_, title), w in zip(COLUMNS, widths, strict=True))]
    for r in rows:
        lines.append(
            "  ".join(str(r[key]).rjust(w) for (key, _), w in zip(COLUMNS, widths, strict=True))
        )
    return "\n".join(lines)


def describe(result: dict) -> str:
    """One finding, for a test failure message."""
    parts = [f"[{result.get('kind')} {result.get('seed')}] {result.get('outcome')}",
             str(result.get("what", "")), f"{result.get('error_type', '')}: "
             f"{result.get('message', '') or result.get('error', '')}"]  # fmt: skip
    if result.get("where"):
        parts.append(str(result["where"]).strip()[-600:])
    return "\n    ".join(parts)
