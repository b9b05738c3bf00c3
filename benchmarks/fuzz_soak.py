"""Soak test of hostile model files: the CI fuzz suite's cases, many more of them.

The same seeds, mutations, worker and limits as tests/fuzz/test_model_files_fuzz.py (issue
17): GGUF files, safetensors files, checkpoint and Hugging Face configs, tokenizer.json files
and special files, each mutated by a seed and loaded in a worker process with a wall-clock
limit per case and a memory cap. Every case must end in a TokenscopeError naming the file or in
a clean load (a prediction with finite probabilities, two generated tokens, the chat template).

    python benchmarks/fuzz_soak.py                    # 2000 cases per file kind, seed "soak"
    python benchmarks/fuzz_soak.py --per-kind 200 --seed nightly-42 --timeout 30 --cap-mb 512

Prints a table (file kind, tried, clean error, loaded, unexpected, unnamed, hangs, crashes,
runaway memory, peak MB, slowest case) and every finding, one per line, with the seed that
reproduces it. Exits 1 when there is any finding.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fuzz"))

import fuzz_runner  # found through the path above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=2000, help="cases per file kind")
    parser.add_argument("--kinds", default=",".join(fuzz_runner.KINDS))
    parser.add_argument("--seed", default="soak", help="the same seed gives the same cases")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--cap-mb", type=int, default=512, help="memory one case may add")
    parser.add_argument("--work", type=Path, help="where cases are written (default: a temp dir)")
    args = parser.parse_args()

    counts = {kind: args.per_kind for kind in args.kinds.split(",")}
    cases = fuzz_runner.plan(counts, args.seed)  # after the named cases of the campaign
    done = collections.Counter()
    started = time.monotonic()

    def progress(result: dict) -> None:
        done[result["outcome"]] += 1
        n = sum(done.values())
        if n % 500 == 0 or n == len(cases):
            rate = n / max(time.monotonic() - started, 1e-9)
            print(f"  {n:,}/{len(cases):,} cases, {rate:.0f}/s: {dict(done)}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="tokenscope-fuzz-") as tmp:
        work = args.work or Path(tmp)
        run = fuzz_runner.run_cases(
            cases,
            work=work,
            timeout_s=args.timeout,
            cap_mb=args.cap_mb,
            on_result=progress,
            named=True,
        )
    results = run["results"]
    rows = fuzz_runner.summarize(results, args.cap_mb)
    print(
        f"fuzz soak: {len(results):,} cases, seed {args.seed!r}, {args.timeout:g} s and "
        f"{args.cap_mb} MB per case, worker at rest {run['baseline_mb']:.0f} MB, "
        f"{run['workers']} worker start(s), {run['seconds']:.0f} s"
    )
    print(fuzz_runner.table(rows))
    findings = fuzz_runner.problems(results, args.cap_mb)
    for finding in findings:
        print("\n" + fuzz_runner.describe(finding))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
