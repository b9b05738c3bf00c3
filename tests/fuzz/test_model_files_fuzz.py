"""Hostile and broken model files (issue 17): a few hundred seeded mutations of GGUF files,
safetensors files, checkpoint and Hugging Face configs, tokenizer.json files and special files,
each loaded in a worker process under a wall-clock limit and a memory cap.

Every case must end in a TokenscopeError that names the file, or in a clean load (the model
then predicts with finite probabilities, generates, and renders its chat template). Anything
else is a finding: another exception type, a hang, a crash of the process, runaway memory.
The same cases run longer from benchmarks/fuzz_soak.py.
"""

from __future__ import annotations

import sys

import pytest

from .fuzz_runner import describe, plan, problems, run_cases, summarize, table

# FIFOs, sockets, /dev, /proc and resource limits: the suite is written for Linux (CI's system).
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

CI_COUNTS = {"gguf": 100, "safetensors": 60, "config": 60, "tokenizer": 60, "special": 40}
#: Memory a single case may add to the warm worker (RLIMIT_DATA above what it uses).
CAP_MB = 512
TIMEOUT_S = 20


@pytest.mark.slow
def test_hostile_model_files_end_in_a_clean_error_or_a_clean_load(tmp_path):
    cases = plan(CI_COUNTS, seed="ci")
    run = run_cases(cases, work=tmp_path, timeout_s=TIMEOUT_S, cap_mb=CAP_MB, named=True)
    results = run["results"]
    rows = {row["kind"]: row for row in summarize(results, CAP_MB)}
    report = table(list(rows.values()))
    bad = problems(results, CAP_MB)
    assert not bad, f"{len(bad)} findings:\n{report}\n\n" + "\n\n".join(map(describe, bad[:10]))
    named = [r for r in results if r["seed"].startswith("named:")]
    assert len(named) >= 40 and len(results) == len(named) + len(cases), report
    # Every named case (a finding of the campaign) is a broken file: each gets its clean error.
    assert all(r["outcome"] == "clean" for r in named), [r["what"] for r in named
                                                       if r["outcome"] != "clean"]  # fmt: skip
    assert run["workers"] == 1, report  # no case needed a fresh worker
    for kind in CI_COUNTS:
        # The mutations must really break files (clean errors) of every kind...
        assert rows[kind]["clean"] >= CI_COUNTS[kind] // 2, report
    # ...and leave some loadable, so that the checks after loading run too.
    assert rows["all"]["loaded"] >= 20, report
    assert max(r.get("peak_mb", 0) for r in results) < CAP_MB, report


@pytest.mark.slow
def test_the_harness_sees_hangs_crashes_runaway_memory_and_other_errors(tmp_path):
    """Failures made on purpose between real cases: each is classified, and the cases after
    a hang or a crash still run in a fresh worker."""
    kinds = ["gguf", "canary-fifo", "gguf", "canary-crash", "tokenizer", "canary-memory",
             "canary-unexpected", "canary-unnamed", "config"]  # fmt: skip
    cases = [{"case": i, "kind": kind, "seed": f"harness:{i}"} for i, kind in enumerate(kinds)]
    run = run_cases(cases, work=tmp_path, timeout_s=5, cap_mb=256)
    outcomes = [r["outcome"] for r in run["results"]]
    assert outcomes[1] == "hang"
    assert outcomes[3] == "crash" and "SIGABRT" in run["results"][3]["message"]
    assert outcomes[5] == "runaway memory"
    assert outcomes[6] == "unexpected" and run["results"][6]["error_type"].endswith(
        "ZeroDivisionError"
    )
    assert [r["outcome"] for r in problems(run["results"], 256)] == [
        "hang",
        "crash",
        "runaway memory",
        "unexpected",
        "unnamed file",
    ]
    for i in (0, 2, 4, 8):
        assert outcomes[i] in ("clean", "loaded"), run["results"][i]
    assert run["workers"] == 3  # the first, then one after the hang and one after the crash
