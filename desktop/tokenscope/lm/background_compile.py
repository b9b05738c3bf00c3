"""The compiled decode step as the default: built in the background, taking over when ready.

Compiling SmolLM2's step takes minutes the first time on a small CPU, and inductor's Python
code generation would hold the interpreter lock all that while (a window would stutter). So
the first compile of a model runs in a separate process at low priority
(`python -m tokenscope.lm.background_compile`), which only fills inductor's disk cache and
leaves a marker; then, here, a thread builds the step from that cache (seconds to tens of
seconds of tracing) and hands it to the model, whose next single-token forward uses it. The
eager path serves meanwhile; the two share the KV cache's layout, so a generation may change
paths between two tokens. Any failure (no C++ compiler, an architecture without a compiled
step) leaves the model eager, with the reason in `note`.

Small models are not compiled: the bundled model generates over a thousand tokens a second
eagerly, and a new user's first start should not spend minutes of CPU on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel

#: Below this many parameters eager decoding is fast enough that compiling is not worth it.
WORTH_COMPILING = 50_000_000
#: The first compile in its own process may take this long before it is given up.
COMPILE_LIMIT_S = 30 * 60


def marker_path(model: LanguageModel) -> Path:
    """Where a finished compile of this model's step (shapes, packing, torch) is recorded."""
    import torch

    from tokenscope.lm import compiled

    compiled.use_disk_cache()  # the marker lives with the code it vouches for
    key = {
        "config": repr(model.config),
        "packing": model.packing,
        "torch": torch.__version__,
        "step": hashlib.sha256(Path(compiled.__file__).read_bytes()).hexdigest()[:16],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) / "tokenscope-warm" / f"{digest}.json"


def why_not(model: LanguageModel, minimum: int = WORTH_COMPILING) -> str | None:
    """Why this model decodes eagerly rather than compiled, or None if it should compile."""
    if os.environ.get("TOKENSCOPE_COMPILE") == "0":
        return "compiled decoding is turned off (TOKENSCOPE_COMPILE=0)"
    if model.device.type != "cpu":
        return "compiled decoding is for the CPU; this model runs on " + model.device.type
    if not model.config.classic:
        return "this architecture decodes eagerly (no compiled step for its blocks)"
    if model.parameter_count < minimum:
        return "small enough to decode fast eagerly"
    return None


_QUIET = ("small enough", "compiled decoding is turned off")


def worth_saying(reason: str) -> bool:
    """Whether a reason from `why_not` is news to the person (not: small model, turned off)."""
    return not reason.startswith(_QUIET)


class BackgroundCompile:
    """One model's compile in the background; `state` is "compiling", "ready", "failed" or
    "cancelled". (Its process loads the model again; the packed weights' pages are the page
    cache's, shared with this process, not a second copy.)"""

    def __init__(self, model: LanguageModel, dtype: str | None) -> None:
        self.model = model
        self.dtype = dtype
        self.state = "compiling"
        self.note = ""
        self.seconds = 0.0
        self._cancelled = False
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="compileDecoding", daemon=True)

    def start(self) -> BackgroundCompile:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop (another model was loaded): the process is killed, the result discarded."""
        self._cancelled = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def wait(self, timeout: float | None = None) -> str:
        self._thread.join(timeout)
        return self.state

    def _run(self) -> None:
        import time

        started = time.perf_counter()
        try:
            marker = marker_path(self.model)
            if not marker.exists() and self.model.source and Path(self.model.source).exists():
                self._compile_elsewhere(marker)
            if self._cancelled:
                self.state = "cancelled"
                return
            from tokenscope.lm.compiled import CompiledDecoder

            decoder = CompiledDecoder(self.model.transformer)
            decoder.warm()
            if self._cancelled:
                self.state = "cancelled"
                return
            self.model.adopt_decoder(decoder)
            _write_marker(marker)
            self.seconds = time.perf_counter() - started
            self.state = "ready"
        except Exception as e:  # any failure leaves the eager model as it is
            lines = str(e).strip().splitlines()
            self.note = f"compiled decoding unavailable ({lines[0] if lines else type(e).__name__})"
            self.state = "failed"

    def _compile_elsewhere(self, marker: Path) -> None:
        command = [sys.executable, "-m", "tokenscope.lm.background_compile", str(self.model.source)]
        if self.dtype:
            command += ["--dtype", self.dtype]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_child_setup if sys.platform.startswith("linux") else None,
        )
        if self._cancelled:  # cancelled while it was being started (cancel saw no process)
            self._process.kill()
        try:
            _, err = self._process.communicate(timeout=COMPILE_LIMIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise RuntimeError(
                f"the first compile took over {COMPILE_LIMIT_S // 60} minutes"
            ) from None
        if self._process.returncode != 0 and not self._cancelled:
            tail = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
            raise RuntimeError(tail[-1] if tail else f"exit status {self._process.returncode}")


def _child_setup() -> None:
    """In the compiling process, before it runs: low priority, and killed with its parent
    (a window or server that ends does not leave minutes of compiling behind)."""
    import ctypes
    import signal

    os.nice(10)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _write_marker(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("{}")
    except OSError:
        pass  # the next start compiles in the background again: slower, not wrong


def main(argv: list[str] | None = None) -> int:
    """Fill inductor's disk cache with a model's compiled step (the first compile's process)."""
    parser = argparse.ArgumentParser(prog="python -m tokenscope.lm.background_compile")
    parser.add_argument("model")
    parser.add_argument("--dtype")
    args = parser.parse_args(argv)
    import torch

    from tokenscope.lm.loading import load_model

    torch.set_num_threads(1)
    model = load_model(args.model, dtype=args.dtype)
    model.compile_decoding()
    _write_marker(marker_path(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
