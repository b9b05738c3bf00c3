"""Numbers as a person reads them: sizes, counts and durations (the CLI and the window agree)."""

from __future__ import annotations

COUNT_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def format_bytes(n: float | None) -> str:
    """1.5 MB, 820 B, 3.1 GB (decimal units, as file managers show); "" for None."""
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_count(n: float) -> str:
    """A parameter count: 135M, 1.5B, 7K."""
    for scale, unit in COUNT_UNITS:
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}".replace(".0", "")
    return f"{n:.0f}"


def format_duration(seconds: float) -> str:
    """A time span at a glance: 40 s, 12 min, 3.5 h, 2.0 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_rank(rank: int | None, above: int = 0) -> str:
    """A token's rank: "3"; "> 100" when it was below the 100 tokens a server listed; "?"
    where nothing was listed."""
    if rank is not None:
        return str(rank)
    return f"> {above}" if above else "?"


def bound_mark(upper_bound: bool) -> str:
    """ "≤" before a probability that is only an upper bound (a server's top-k list)."""
    return "≤" if upper_bound else ""


#: how far a probability may stray past 0 or 1 by rounding (float32 sums) and still be shown,
#: as the edge it rounded past
PROBABILITY_ROUNDING = 1e-4


def probability(p: float | None) -> float | None:
    """`p` as it may be shown or written: within 0..1, a value rounded just past an edge taken
    back to it; None for what no probability can be (NaN, below 0, above 1: e^5 from a server
    that sent a log-probability of +5), so that no view prints an impossible number."""
    if p is None or not -PROBABILITY_ROUNDING <= p <= 1 + PROBABILITY_ROUNDING:
        return None  # (NaN fails every comparison)
    return min(1.0, max(0.0, float(p)))


def format_probability(p: float | None, spec: str = ".4f") -> str:
    """`p` formatted by `spec` ("0.1234", "1.234e-05"), or "?" where it is no probability."""
    shown = probability(p)
    return "?" if shown is None else format(shown, spec)
