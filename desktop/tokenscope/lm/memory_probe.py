"""What the memory under the weights is like on this machine: huge pages, and how fast it reads.

Decoding one token reads every weight once, so its speed follows the memory's read speed.
On one virtual machine in its first hour after boot (measured 2026-12-04, Intel Xeon, 2 cores),
425 MB of float32 matrices read at 0.43 GB/s from ordinary allocations and at 11.8 GB/s from
one anonymous mapping with huge pages advised, while llama.cpp, which maps its model file,
held its speed; an hour later both read at 3-6 GB/s. Fresh guest memory (first touch,
4 KB pages, lazily backed by the host) is the suspect. Tokenscope therefore keeps packed
weights in one mapped file (tokenscope.lm.formats.packed_cache), as llama.cpp does; this
module measures what the engine can expect (`tokenscope doctor`, benchmarks/memory_luck.py).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from pathlib import Path
from typing import Any

import torch

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def transparent_huge_pages() -> str:
    """The kernel's setting ("always", "madvise", "never"), or "unknown" off Linux."""
    try:
        text = THP.read_text()
    except OSError:
        return "unknown"
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip() or "unknown"


def huge_pages_in_use() -> dict[str, int]:
    """Kilobytes of memory in huge pages now, machine-wide (AnonHugePages, FileHugePages...)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("AnonHugePages", "FileHugePages", "ShmemHugePages", "MemTotal"):
                    out[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def virtual_machine() -> str | None:
    """The hypervisor's vendor where the CPU says it runs under one, else None."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return None
    if " hypervisor" not in flags:
        return None
    for name in ("sys_vendor", "product_name"):
        with contextlib.suppress(OSError):
            value = Path("/sys/class/dmi/id", name).read_text().strip()
            if value:
                return value
    return "yes"


def mapping_huge_kb(start: int, length: int) -> int:
    """Kilobytes mapped by huge pages in the mappings of this process that hold any of
    [start, start + length) (all of each such mapping: the heap's, for ordinary memory)."""
    total = 0
    inside = False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                if "-" in line.split(" ", 1)[0] and not line.startswith(
                    ("AnonHuge", "FilePmd", "ShmemPmd")
                ):
                    low, high = (int(x, 16) for x in line.split(" ", 1)[0].split("-"))
                    inside = low < start + length and high > start
                elif inside and line.startswith(("AnonHugePages:", "FilePmdMapped:")):
                    total += int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return total


def tensor_address_range(t: torch.Tensor) -> tuple[int, int]:
    return t.data_ptr(), t.numel() * t.element_size()


def _matrices(storage: torch.Tensor, cols: int) -> list[torch.Tensor]:
    """float32 (576, cols) matrices laid over a flat float32 tensor."""
    per = 576 * cols
    return [storage[i * per : (i + 1) * per].view(576, cols) for i in range(storage.numel() // per)]


def _read_speed(storage: torch.Tensor, passes: int) -> tuple[float, float]:
    """(GB/s of the first pass, best GB/s of the next ones) multiplying a vector by every
    matrix over `storage`, one thread: the access pattern of decoding one token."""
    mats = _matrices(storage, 3072)
    x = torch.randn(1, 576)
    size = sum(m.numel() for m in mats) * 4 / 1e9
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(passes + 1):
            started = time.perf_counter()
            for m in mats:
                x @ m
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return size / times[0], size / min(times[1:])


def probe(megabytes: int = 256, passes: int = 3) -> dict[str, Any]:
    """Read speeds of ordinary memory and of one huge-page mapping, fresh pages each: what
    `doctor` reports. A few tenths of a second."""
    n = megabytes * 2**20 // 4
    results: dict[str, Any] = {}
    ordinary = torch.empty(n)
    ordinary.normal_()
    results["ordinary"] = _read_speed(ordinary, passes)
    results["ordinary_huge_kb"] = mapping_huge_kb(*tensor_address_range(ordinary))
    del ordinary
    arena = mmap.mmap(-1, n * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        with contextlib.suppress(OSError):
            arena.madvise(mmap.MADV_HUGEPAGE)
    huge = torch.frombuffer(arena, dtype=torch.float32)
    huge.normal_()
    results["huge_advised"] = _read_speed(huge, passes)
    results["huge_advised_huge_kb"] = mapping_huge_kb(*tensor_address_range(huge))
    del huge
    with contextlib.suppress(BufferError):
        arena.close()
    return results


def report(run_probe: bool = True) -> dict[str, Any]:
    """The memory facts `tokenscope doctor` prints."""
    meminfo = huge_pages_in_use()
    facts: dict[str, Any] = {
        "transparent_huge_pages": transparent_huge_pages(),
        "huge_pages_in_use": (
            f"anonymous {meminfo.get('AnonHugePages', 0) // 1024} MB, "
            f"file {meminfo.get('FileHugePages', 0) // 1024} MB"
        ),
        "virtual_machine": virtual_machine() or "no",
    }
    from tokenscope.lm.formats.packed_cache import folder

    files = list(folder().glob("*.tspack")) if folder().is_dir() else []
    size = sum(f.stat().st_size for f in files) / 2**20
    facts["packed_weights"] = f"{len(files)} model(s), {size:.0f} MB in {folder()}"
    if run_probe and os.environ.get("TOKENSCOPE_DOCTOR_PROBE") != "0":
        r = probe()
        (o1, o2), (h1, h2) = r["ordinary"], r["huge_advised"]
        facts["memory_read"] = (
            f"ordinary {o1:.1f} GB/s first, {o2:.1f} warm ({r['ordinary_huge_kb'] // 1024} MB "
            f"huge); one huge-page mapping {h1:.1f} first, {h2:.1f} warm "
            f"({r['huge_advised_huge_kb'] // 1024} MB huge)"
        )
        if min(o1, o2) < 0.5 * max(h1, h2):
            facts["memory_note"] = (
                "ordinary memory reads much slower than a huge-page mapping here: packed "
                "weights are mapped from their cache file, which avoids it"
            )
    return facts
