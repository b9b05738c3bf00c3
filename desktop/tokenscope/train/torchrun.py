"""torchrun with a clean stop: the same options, and exit status 0 after a SIGTERM or Ctrl-C.

    python -m tokenscope.train.torchrun --standalone --nproc-per-node 2 -m tokenscope.train ...

torchrun answers SIGTERM or SIGINT by raising inside its agent: it sends SIGTERM to the
workers, waits for them, then exits 1 with a traceback, even when every worker saved a
checkpoint and stopped cleanly. Here the first SIGTERM or SIGINT is passed on to the workers
(each trainer saves and exits 0) while torchrun goes on watching them, so it ends as they do:
0 after a clean stop. A second signal ends them the way torchrun does.

This is torchrun itself (torch.distributed.run) with other signal handlers, nothing more.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType


def _children() -> list[int]:
    """The pids of this process's children (torchrun's workers), from /proc."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(me):
            found.append(int(entry.name))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # asked twice: end the workers as torchrun does
            raise SignalException(
                f"Process {os.getpid()} got signal: {signum}", sigval=signal.Signals(signum)
            )
        stopping = True
        for pid in _children():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    args = list(sys.argv[1:] if argv is None else argv)
    # torchrun installs its raising handler for the signals named here: not for ours.
    torchrun.main(["--signals-to-handle", "SIGHUP,SIGQUIT", *args])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
