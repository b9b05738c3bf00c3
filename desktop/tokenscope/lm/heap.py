"""Keep transient tensors from staying resident after a model is loaded (glibc only).

glibc serves large allocations with mmap and gives them back on free, but it raises that
threshold each time such a block is freed (up to 32 MB), after which big temporaries come
from the heap, where freed memory stays resident. Loading a model makes exactly that
pattern: one layer at a time dequantized to float32, packed, freed. Measured on SmolLM2
(98 MB GGUF): ~210 MB more peak memory with the moving threshold than with a fixed one.
"""

from __future__ import annotations

import ctypes
import functools
import sys

_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc, not musl)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def fix_mmap_threshold() -> bool:
    """Large blocks (1 MB and up) always mmap'ed, so freeing them returns the memory."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1)


def trim() -> None:
    """Give freed heap memory back to the system (after a load)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
