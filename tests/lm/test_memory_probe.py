"""What `tokenscope doctor` says about the memory under the weights (lm.memory_probe)."""

from __future__ import annotations

import mmap
import subprocess
import sys

import torch

from tokenscope.lm import memory_probe


def test_the_kernel_setting_and_the_huge_pages_in_use_are_read():
    assert memory_probe.transparent_huge_pages() in ("always", "madvise", "never", "unknown")
    used = memory_probe.huge_pages_in_use()
    assert used.get("MemTotal", 0) > 0  # (Linux: /proc/meminfo)
    assert all(v >= 0 for v in used.values())


def test_huge_pages_are_counted_for_the_region_asked_about_only():
    size = 32 << 20
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    t = torch.frombuffer(region, dtype=torch.uint8)
    t.fill_(1)
    start, length = memory_probe.tensor_address_range(t)
    assert length == size
    inside = memory_probe.mapping_huge_kb(start, length)
    assert 0 <= inside <= size // 1024
    if memory_probe.transparent_huge_pages() in ("always", "madvise"):
        assert inside > 0  # advised and touched: the kernel gave it huge pages
    # An address range no mapping covers has none.
    assert memory_probe.mapping_huge_kb(8 << 40, 4096) == 0
    del t


def test_the_read_probe_measures_both_kinds_of_memory():
    r = memory_probe.probe(megabytes=16, passes=1)
    for kind in ("ordinary", "huge_advised"):
        first, warm = r[kind]
        assert first > 0 and warm > 0
        assert r[f"{kind}_huge_kb"] >= 0
    # The advised region is a mapping of its own: what is counted lies inside it. (Ordinary
    # memory shares its mapping with other allocations, whose huge pages count too.)
    assert r["huge_advised_huge_kb"] <= 16 * 1024


def test_doctor_reports_the_memory(tmp_path):
    env = {"TOKENSCOPE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tokenscope", "doctor"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = {ln.split(None, 1)[0]: ln for ln in done.stdout.splitlines() if ln.strip()}
    for key in ("transparent_huge_pages", "huge_pages_in_use", "virtual_machine",
                "packed_weights", "memory_read"):  # fmt: skip
        assert key in lines, done.stdout
    assert "GB/s" in lines["memory_read"]
    assert "0 model(s)" in lines["packed_weights"]  # a fresh home keeps none
