"""How many CPU threads torch should use for a model, on this machine.

Measured on 2-core machines (2026-11-30): spin-waiting thread pools collapse when another
process wants a core, and a small model gains nothing from a second thread: the bundled model
generated 125-186 tokens/s on one thread but 14-26 on two while anything else ran, SmolLM2
4.8 against 1.5. So small models get one thread, and larger ones every core but one, which
is left for the window (or the shell) that asked.
"""

from __future__ import annotations

import os

#: Below this many parameters a second thread does not pay for its synchronisation.
SMALL_MODEL = 50_000_000


def cpu_cores() -> int:
    """Cores this process may use (affinity-aware where the platform tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_threads(parameters: int, cores: int | None = None) -> int:
    """Torch threads for a model of `parameters` on `cores` cores (default: this machine)."""
    cores = cpu_cores() if cores is None else cores
    if parameters < SMALL_MODEL:
        return 1
    return max(1, cores - 1)


def check_threads(threads: int) -> int:
    """`threads` if it is a sensible count for this machine, else ValueError naming the range."""
    cores = cpu_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4 * cores:
        raise ValueError(f"threads must be a whole number from 1 to {4 * cores} (got {threads!r})")
    return threads
