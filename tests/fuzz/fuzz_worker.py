"""The fuzz worker: loads one mutated model after another and reports each as a JSON line.

Started by fuzz_runner with pipes for stdin and stdout:

    first line in    {"corpus": folder, "work": folder, "cap_mb": N}
    first line out   {"ready": true, "baseline_mb": ..., "data_limit_mb": ...}
    then, per case   in: {"case": n, "kind": "gguf", "seed": "..."}
                     out: {"case": n, "outcome": ..., "stage": ..., "peak_mb": ..., ...}

Outcomes: "loaded" (loaded, predicted once with finite probabilities summing to 1, generated
two tokens, rendered its chat template if it has one), "clean" (a TokenscopeError), "runaway
memory" (an allocation beyond the cap failed), "unexpected" (any other exception, with its type
and the last frames). The runner enforces the wall-clock limit by killing this process; the
memory cap is set here, once imports and seeds are warm, as RLIMIT_DATA = what is in use + cap.
Peak memory per case is the resident high-water mark (reset before each case through
/proc/self/clear_refs) minus what was resident before it.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "The capital of France is"


def _status(field: str) -> int:
    """A /proc/self/status field in kB."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _exercise(model: Any) -> str:
    """Use a loaded model as a person would; returns the stage reached."""
    import torch

    from tokenscope.lm.sampling import SamplingSettings

    dist = model.predict_next_token_probabilities(PROMPT)
    raw = dist.raw
    if not bool(torch.isfinite(raw).all()) or abs(float(raw.sum()) - 1.0) > 1e-3:
        raise AssertionError(f"the probabilities are not a distribution (sum {float(raw.sum())})")
    for token in dist.top(5):
        assert isinstance(token.display, str) and isinstance(token.text, str)
    steps = list(model.generate("Hello", max_tokens=2, sampling=SamplingSettings(temperature=0)))
    for step in steps:
        assert isinstance(step.display, str) and 0.0 <= step.probability <= 1.0
    if model.chat_template:
        text = model.chat_prompt("Hello")
        assert isinstance(text, str)
    return "used"


def _runaway(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def _canary(kind: str, case_dir: Path, cap_mb: int) -> None:
    """Failures made on purpose, to prove that the runner sees each kind (see the tests)."""
    from tokenscope.lm import ModelFormatError

    if kind == "canary-hang":
        time.sleep(3600)
    elif kind == "canary-fifo":  # what a loader that opens a FIFO for reading does
        os.mkfifo(case_dir / "pipe")
        (case_dir / "pipe").read_bytes()
    elif kind == "canary-crash":
        os.abort()
    elif kind == "canary-memory":
        bytearray((cap_mb + 256) * 2**20)
    elif kind == "canary-unexpected":
        raise ZeroDivisionError("a bug")
    elif kind == "canary-unnamed":
        raise ModelFormatError("a message that names no file")


def run_case(spec: dict, corpus: Any, work: Path, cap_mb: int = 0) -> dict:
    from fuzz_mutations import make_case

    from tokenscope.lm import TokenscopeError, load_model
    from tokenscope.lm.formats.summary import summarize

    case_dir = work / f"case-{spec['case']:06d}"
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    result: dict[str, Any] = {"case": spec["case"], "kind": spec["kind"], "seed": spec["seed"]}
    try:
        if spec["kind"].startswith("canary-"):
            path, what = case_dir, spec["kind"]
        else:
            path, what = make_case(spec["kind"], spec["seed"], corpus, case_dir)
    except Exception as e:  # the fuzzer's own bug: reported, and fails the test
        result.update(outcome="fuzzer error", error=f"{type(e).__name__}: {e}")
        return result
    result["what"] = what
    rss_before = _status("VmRSS")
    peak_known = _reset_peak()
    started = time.perf_counter()
    stage = "load"
    try:
        if spec["kind"].startswith("canary-"):
            _canary(spec["kind"], case_dir, cap_mb)
        model = load_model(path)
        stage = "use"
        _exercise(model)
        result["outcome"] = "loaded"
    except TokenscopeError as e:
        result.update(outcome="clean", error_type=type(e).__name__, message=str(e)[:400])
        # An error while loading must say which file: the case folder is in every path.
        result["names_file"] = stage != "load" or case_dir.name in str(e)
    except BaseException as e:  # everything else is a finding, PanicException included
        outcome = "runaway memory" if _runaway(e) else "unexpected"
        frames = traceback.format_tb(e.__traceback__)[-3:]
        result.update(outcome=outcome, error_type=f"{type(e).__module__}.{type(e).__name__}",
                      message=str(e)[:400], where="".join(frames)[-1500:])  # fmt: skip
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
    finally:
        model = None
    result["stage"] = stage
    result["seconds"] = round(time.perf_counter() - started, 3)
    try:  # what `tokenscope models list` shows: it must describe any file, never raise
        summary = summarize(path)
        assert summary.problem is None or isinstance(summary.problem, str)
    except BaseException as e:
        if result["outcome"] in ("loaded", "clean"):
            result.update(outcome="unexpected", stage="summary", message=str(e)[:400],
                          error_type=f"{type(e).__module__}.{type(e).__name__}")  # fmt: skip
    if peak_known:
        result["peak_mb"] = round(max(0, _status("VmHWM") - rss_before) / 1024, 1)
    shutil.rmtree(case_dir, ignore_errors=True)
    return result


def main() -> None:
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never among the results
    import torch

    torch.set_num_threads(1)
    import fuzz_corpus

    from tokenscope.lm import load_model

    setup = json.loads(sys.stdin.readline())
    work = Path(setup["work"])
    corpus = fuzz_corpus.build(Path(setup["corpus"]))
    seeds = {}
    for name, path in [*corpus.folders.items(), *corpus.gguf_files.items()]:
        model = load_model(path)  # a seed that does not load is the fuzzer's own bug
        _exercise(model)
        seeds[name] = model.architecture or "tokenscope"
    model = None
    gc.collect()
    # RLIMIT_DATA counts private writable memory (heap, anonymous maps), not mapped files:
    # exactly what a runaway allocation grows. The hard limit stays where it was.
    in_use = _status("VmData") * 1024
    limit = in_use + setup["cap_mb"] * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    baseline = round(_status("VmRSS") / 1024, 1)
    from fuzz_mutations import NAMED

    ready = {"ready": True, "baseline_mb": baseline, "data_limit_mb": limit // 2**20,
             "seeds": seeds, "peak_reset": _reset_peak(),
             "named": [[kind, name] for name, (kind, _) in NAMED.items()]}  # fmt: skip
    results.write(json.dumps(ready) + "\n")
    for done, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        result = run_case(json.loads(line), corpus, work, setup["cap_mb"])
        results.write(json.dumps(result) + "\n")
        if done % 100 == 99:
            gc.collect()  # ~70 ms with torch loaded: now and then, not per case


if __name__ == "__main__":
    main()
