"""The network fuzz worker: runs one hostile case after another against Tokenscope's own Hub
client and model-server client, in this process, and reports each as a JSON line. It speaks
tests/fuzz/fuzz_runner's protocol (the runner kills it on a hang and caps its memory):

    first line in    {"work": folder, "cap_mb": N, ...}
    first line out   {"ready": true, "baseline_mb": ..., "named": []}
    then, per case   in: {"case": n, "kind": "hub" | "remote", "seed": "..."}
                     out: {"case": n, "outcome": ..., "what": ..., "peak_mb": ..., ...}

Outcomes: "ok" (a correct result: the files the Hub really holds, probabilities in [0, 1]),
"clean" (a TokenscopeError in one printable line), and the findings: "escaped" (a file written
outside the cache), "leaked token" (the Hub's token sent to another host), "wrong result",
"dirty message" (a message with a newline or a control character), "slow" (past the time
the limits allow), "unexpected" (any other exception), "runaway memory".

The client's limits are set short here (a read waits 1 s, a listing 2 s in all, connecting 3
s), so that a case that stalls ends in seconds: the cases test that every wait has an end,
not the length of the real ones.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "fuzz"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_TOKEN"] = "hf_fuzz_secret_token"
os.environ.pop("HF_HUB_OFFLINE", None)

#: the longest a case may take with the limits set below (more is "slow")
SLOW_S = 20.0


def _limits() -> None:
    import tokenscope.lm.hub_download as hub_download
    import tokenscope.lm.remote.detect as detect

    hub_download.API_TOTAL_S, hub_download.API_READ_S = 2.0, 1.0
    hub_download.FILE_READ_S, hub_download.HEADERS_S = 1.0, 2.0
    hub_download.STALL_S, hub_download.STALL_BYTES = 1.0, 16 * 1024
    detect.CONNECT_BUDGET_S = 3.0


def one_line(message: str) -> bool:
    from tokenscope.escapes import printable

    return bool(message) and printable(message) == message and len(message) < 2000


def _hub(action: str, expect: dict, cache: Path) -> str:
    """Run the action; "ok" or what is wrong with its result."""
    from tokenscope.lm import hub, hub_listing

    if action in ("pull-gguf", "pull-folder"):
        ref = "hf:acme/m/m.gguf" if action == "pull-gguf" else "hf:acme/m"
        path = Path(hub.pull(ref))
        if not str(path.resolve()).startswith(str(cache.resolve())):
            return "wrong result"
        names = ["m.gguf"] if action == "pull-gguf" else ["config.json", "model.safetensors",
                                                            "tokenizer.json"]  # fmt: skip
        for name in names:
            file = path if action == "pull-gguf" else path / name
            if name == "tokenizer.json" and not file.exists():
                continue  # (a listing without it: the folder is pulled without it)
            if file.read_bytes() != expect["files"][name]:
                return "wrong result"
        return "ok"
    if action == "choices":
        found = hub.choices("acme/m")
        good = all(c.ref.startswith("hf:acme/m") and c.size_bytes >= 0 for c in found)
        return "ok" if good and all(one_line(c.label) for c in found) else "wrong result"
    if action == "revisions":
        names = hub.revisions("acme/m")
        good = all(isinstance(n, str) and one_line(n) and ".." not in n for n in names)
        return "ok" if good else "wrong result"
    results = hub_listing.search("m")
    good = all(r.id.count("/") == 1 and one_line(r.id) for r in results)
    return "ok" if good else "wrong result"


def _remote(action: str, url: str) -> str:
    import math

    from tokenscope.lm.remote import RemoteModel

    def probability(p: float) -> bool:
        return isinstance(p, float) and math.isfinite(p) and 0.0 <= p <= 1.0

    if action == "models":
        names = RemoteModel.list_models(url, timeout=1.0)
        return "ok" if all(isinstance(n, str) for n in names) else "wrong result"
    model = RemoteModel(url, timeout=1.0)
    if action == "predict":
        dist = model.predict_next_token_probabilities("ab")
        top = dist.top(20)
        total = sum(t.probability for t in top)
        good = all(probability(t.probability) for t in top) and total <= 1.01
        return "ok" if good and probability(dist.other) else "wrong result"
    if action == "generate":
        steps = list(model.generate("ab", max_tokens=3))
        good = len(steps) <= 3 and all(probability(s.probability) for s in steps)
        return "ok" if good else "wrong result"
    score = model.score_continuation("ab", " c")
    good = all(math.isfinite(v) and v <= 0 for v in score.logprobs)
    return "ok" if good and probability(score.probability) else "wrong result"


def _escaped(case_dir: Path) -> list[str]:
    """Files anywhere in the case's folder but the cache (the outside folder must stay empty)."""
    allowed = {case_dir / "cache", case_dir / "hf-home"}
    found = []
    for path in case_dir.rglob("*"):
        if any(path == a or a in path.parents for a in allowed) or path == case_dir / "outside":
            continue
        found.append(str(path.relative_to(case_dir)))
    return found


def run_case(spec: dict, work: Path) -> dict:
    from fuzz_worker import _reset_peak, _status
    from hostile import HostileServer
    from huggingface_hub import constants
    from net_cases import hub_case, other_host_script, remote_case

    from tokenscope.lm.errors import TokenscopeError

    result: dict[str, Any] = {"case": spec["case"], "kind": spec["kind"], "seed": spec["seed"]}
    case_dir = work / f"case-{spec['case']}"
    shutil.rmtree(case_dir, ignore_errors=True)
    (case_dir / "outside").mkdir(parents=True)
    cache = case_dir / "cache"
    before = _status("VmRSS")
    _reset_peak()
    began = time.monotonic()
    # A case still running then writes every thread's stack to the log (the runner reports
    # its tail with the hang).
    faulthandler.dump_traceback_later(SLOW_S + 2, exit=False)
    other = HostileServer(other_host_script(spec["seed"])) if spec["kind"] == "hub" else None
    try:
        if other is not None:
            other.__enter__()
            case = hub_case(spec["seed"], str(case_dir / "outside"), other.url)
        else:
            case = remote_case(spec["seed"])
        result["what"] = f"{case.action} · {case.what}"
        with HostileServer(case.script) as server:
            try:
                if spec["kind"] == "hub":
                    constants.ENDPOINT = server.url
                    constants.HF_HUB_CACHE = str(cache)
                    outcome = _hub(case.action, case.expect, cache)
                else:
                    outcome = _remote(case.action, server.url + "/v1")
                result["outcome"] = outcome
            except TokenscopeError as e:
                message = str(e)
                result["message"] = message[:400]
                result["outcome"] = "clean" if one_line(message) else "dirty message"
            except MemoryError:
                result["outcome"] = "runaway memory"
            except Exception as e:
                result.update(outcome="unexpected", error_type=type(e).__name__,
                              message=str(e)[:400],
                              where="".join(traceback.format_exc(limit=-4))[-1500:])  # fmt: skip
    finally:
        if other is not None:
            other.__exit__()
    faulthandler.cancel_dump_traceback_later()
    seconds = time.monotonic() - began
    result["seconds"] = round(seconds, 2)
    result["peak_mb"] = round(max(0, _status("VmHWM") - before) / 1024, 1)
    escaped = _escaped(case_dir)
    if escaped:
        result.update(outcome="escaped", message=", ".join(escaped[:5]))
    if other is not None and any("authorization" in r.headers for r in other.log.requests):
        result.update(outcome="leaked token", message="the token went to another host")
    if result["outcome"] in ("ok", "clean") and seconds > SLOW_S:
        result["outcome"] = "slow"
    shutil.rmtree(case_dir, ignore_errors=True)
    return result


def main() -> None:
    from fuzz_worker import _reset_peak, _status

    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    setup = json.loads(sys.stdin.readline())
    work = Path(setup["work"])
    work.mkdir(parents=True, exist_ok=True)
    import tokenscope.lm.hub
    import tokenscope.lm.hub_listing
    import tokenscope.lm.remote  # noqa: F401

    _limits()
    in_use = _status("VmData") * 1024
    limit = in_use + setup["cap_mb"] * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    ready = {"ready": True, "baseline_mb": round(_status("VmRSS") / 1024, 1),
             "data_limit_mb": limit // 2**20, "peak_reset": _reset_peak(), "named": []}  # fmt: skip
    results.write(json.dumps(ready) + "\n")
    for line in sys.stdin:
        if line.strip():
            results.write(json.dumps(run_case(json.loads(line), work)) + "\n")


if __name__ == "__main__":
    main()
