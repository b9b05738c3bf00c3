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
