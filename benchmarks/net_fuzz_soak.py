"""Soak test of hostile networks: the CI network fuzz suite's cases, many more of them.

The same cases, worker and limits as tests/netfuzz/test_network_fuzz.py (issue 27): a Hub
mirror and model servers on the loopback address that lie, stall, flood and name paths outside
the cache, each case in a worker process with a wall-clock limit and a memory cap; and a client
attacking a real `tokenscope serve` with hostile requests.

    python benchmarks/net_fuzz_soak.py                       # 2000 Hub, 2000 server, 1000 serve
    python benchmarks/net_fuzz_soak.py --per-kind 300 --serve 200 --seed nightly-7

Prints a table per surface (tried, correct results, clean errors, findings, peak memory,
slowest case) and every finding with the seed that reproduces it. Exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fuzz"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "netfuzz"))

import fuzz_runner  # found through the paths above
import serve_attacks

WORKER = Path(__file__).resolve().parent.parent / "tests" / "netfuzz" / "net_worker.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=2000, help="Hub and server cases each")
    parser.add_argument("--serve", type=int, default=1000, help="attacks on tokenscope serve")
    parser.add_argument("--seed", default="soak")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--cap-mb", type=int, default=512)
    args = parser.parse_args()

    findings: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="tokenscope-net-soak-") as work:
        counts = {"hub": args.per_kind, "remote": args.per_kind}
        began = time.monotonic()
        run = fuzz_runner.run_cases(fuzz_runner.plan(counts, args.seed), work=Path(work),
                                    timeout_s=args.timeout, cap_mb=args.cap_mb,
                                    worker_script=WORKER)  # fmt: skip
        results = run["results"]
        for kind in ("hub", "remote"):
            mine = [r for r in results if r["kind"] == kind]
            bad = fuzz_runner.problems(mine, args.cap_mb)
            findings += [fuzz_runner.describe(r) for r in bad]
            outcomes = collections.Counter(r["outcome"] for r in mine)
            rows.append((kind, len(mine), outcomes["ok"], outcomes["clean"], len(bad),
                         max((r.get("peak_mb", 0) for r in mine), default=0),
                         max((r.get("seconds", 0) for r in mine), default=0)))  # fmt: skip
        print(f"hub and server cases: {time.monotonic() - began:.0f} s", flush=True)
        _table(rows)  # printed now too: the serve attacks take a while more
        rows.append(_serve(args, Path(work), findings))
    _table(rows)
    for finding in findings:
        print(finding)
    return 1 if findings else 0


def _table(rows: list[tuple]) -> None:
    print(f"{'surface':>8} {'tried':>6} {'ok':>6} {'clean':>6} {'findings':>9} {'peak MB':>8} "
          f"{'slowest s':>10}")  # fmt: skip
    for row in rows:
        print(f"{row[0]:>8} {row[1]:>6} {row[2]:>6} {row[3]:>6} {row[4]:>9} {row[5]:>8} "
              f"{row[6]:>10}", flush=True)  # fmt: skip


def _serve(args: argparse.Namespace, work: Path, findings: list[str]) -> tuple:
    """The attacks on a real `tokenscope serve` (a tiny model of its own)."""
    import subprocess
    import urllib.request

    from tokenscope.lm import LanguageModel, Tokenizer, Transformer, preset

    tokenizer = Tokenizer.train_bpe(["the capital of France is Paris. " * 50], 300)
    config = preset("tiny", vocab_size=tokenizer.vocab_size)
    folder = LanguageModel(Transformer(config).init_weights(seed=0), tokenizer,
                           name="soak").save(work / "served")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "tokenscope", "serve", "-m", str(folder),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    url, name = line.split(" at ")[1].split()[0], line.split()[1]
    port = int(url.split(":")[2].split("/")[0])

    def rss() -> float:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024

    before, peak, slowest = rss(), 0.0, 0.0
    statuses: collections.Counter[str] = collections.Counter()
    try:
        for i, attack in enumerate(serve_attacks.attacks(f"{args.seed}:serve", args.serve, name)):
            began = time.monotonic()
            status, body = serve_attacks.send(port, attack)
            slowest = max(slowest, time.monotonic() - began)
            statuses[status] += 1
            problem = None
            if status.startswith("5") or status == "hang" or status.startswith("no connection"):
                problem = status
            elif status == "closed" and not (attack.malformed or attack.hang_up):
                problem = "closed without an answer"
            else:
                try:
                    urllib.request.urlopen(url + "/models", timeout=10).read()
                except OSError as e:
                    problem = f"the next client got no answer ({e})"
            if problem:
                findings.append(f"[serve {args.seed}:serve #{i}] {attack.what}: {problem} "
                                f"{body[:160]!r}")  # fmt: skip
            peak = max(peak, rss() - before)
    finally:
        proc.terminate()
        proc.wait(20)
    answered = sum(n for s, n in statuses.items() if s[:1] in "24")
    print(f"serve statuses: {dict(statuses)}", flush=True)
    return (
        "serve",
        args.serve,
        answered,
        args.serve - answered,
        sum(f.startswith("[serve") for f in findings),
        round(peak, 1),
        round(slowest, 2),
    )


if __name__ == "__main__":
    sys.exit(main())
