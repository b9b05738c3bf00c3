"""Does decoding speed depend on the memory the weights landed in? Cold and warm, one run.

    python benchmarks/memory_luck.py              # both parts, 3 rounds
    python benchmarks/memory_luck.py --part read  # the read-speed part only

Part "read": 425 MB of float32 matrices (SmolLM2's block matrices, dequantized) multiplied by
a vector once each, one thread, the access pattern of decoding one token: the first pass over
freshly written memory and the best of three later ones, for four kinds of memory, each in a
fresh process: ordinary allocations (torch.empty), one anonymous mapping with
MADV_HUGEPAGE, one private mapping of a file (the file in the page cache, as llama.cpp maps
its model), and the same with MADV_HUGEPAGE. How much of each was mapped with huge pages is
read from /proc/self/smaps.

Part "decode": SmolLM2 Q4_1 in a fresh process per run, one thread: tokens/s of the first 16
tokens after the load (cold: pages mapped, caches empty) and of the next 48 (warm), for
Tokenscope's default with its packed weights mapped from the cache file, the same packed
into fresh anonymous memory (TOKENSCOPE_PACKED_CACHE=0), and llama.cpp (xllamacpp) in the same
run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

READ_KINDS = ("ordinary", "huge-anon", "file", "file-huge")
DECODE_KINDS = ("mapped", "anonymous", "llama.cpp")
MB = 425


def _read_case(kind: str) -> dict:
    import torch

    from tokenscope.lm.memory_probe import _read_speed, mapping_huge_kb, tensor_address_range

    torch.set_num_threads(1)
    n = MB * 2**20 // 4
    keep = None
    if kind == "ordinary":
        storage = torch.empty(n)
        storage.normal_()
    elif kind == "huge-anon":
        keep = mmap.mmap(-1, n * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        keep.madvise(mmap.MADV_HUGEPAGE)
        storage = torch.frombuffer(keep, dtype=torch.float32)
        storage.normal_()
    else:
        folder = Path(tempfile.gettempdir())
        path = folder / f"tokenscope-memory-luck-{os.getpid()}.bin"
        torch.randn(n).numpy().tofile(path)
        with open(path, "r+b") as f:
            keep = mmap.mmap(f.fileno(), n * 4, flags=mmap.MAP_PRIVATE)
        path.unlink()
        if kind == "file-huge":
            keep.madvise(mmap.MADV_HUGEPAGE)
        storage = torch.frombuffer(keep, dtype=torch.float32)
    first, warm = _read_speed(storage, 3)
    return {
        "first": first,
        "warm": warm,
        "huge_mb": mapping_huge_kb(*tensor_address_range(storage)) / 1024,
    }


def _decode_case(kind: str) -> dict:
    import torch

    from tokenscope.lm.registry import resolve_known

    torch.set_num_threads(1)
    path = str(resolve_known("smollm2-135m"))
    prompt = "The capital of Indonesia is"
    if kind == "llama.cpp":
        from pretrained import LlamaServer

        server = LlamaServer(path, 1)
        body = {"prompt": prompt, "temperature": 0, "top_k": 1, "cache_prompt": False,
                "ignore_eos": True}  # fmt: skip
        cold = server.complete({**body, "n_predict": 17})["timings"]["predicted_per_second"]
        warm = server.complete({**body, "n_predict": 65})["timings"]["predicted_per_second"]
        return {"cold": cold, "warm": warm}
    from tokenscope.lm import GREEDY, load_model

    if kind == "anonymous":
        os.environ["TOKENSCOPE_PACKED_CACHE"] = "0"
    started = time.perf_counter()
    model = load_model(path, dtype="auto")
    load = time.perf_counter() - started
    steps = iter(model.generate(prompt, max_tokens=65, sampling=GREEDY))
    next(steps)  # the prompt's forward pass
    rates = []
    for n in (16, 48):
        t0 = time.perf_counter()
        for _ in range(n):
            next(steps)
        rates.append(n / (time.perf_counter() - t0))
    return {"cold": rates[0], "warm": rates[1], "load_s": load,
            "mapped": model.transformer.weight_map is not None}  # fmt: skip


def _run(args: list[str]) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {' '.join(args)}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}",
              file=sys.stderr)  # fmt: skip
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    from tokenscope.lm.memory_probe import transparent_huge_pages, virtual_machine

    with contextlib.suppress(OSError):
        up = float(Path("/proc/uptime").read_text().split()[0]) / 3600
        cpu += f", up {up:.1f} h"
    vm = virtual_machine() or "no"
    return (f"{cpu}, {os.cpu_count()} cores, {platform.machine()}, transparent huge pages "
            f"{transparent_huge_pages()}, virtual machine: {vm}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("read", "decode", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        part, kind = args.case.split(":")
        print(json.dumps(_read_case(kind) if part == "read" else _decode_case(kind)))
        return
    print(_machine())
    parts = ["read", "decode"] if args.part == "both" else [args.part]
    for part in parts:
        kinds = READ_KINDS if part == "read" else DECODE_KINDS
        results: dict[str, list[dict]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                result = _run(["--case", f"{part}:{kind}"])
                if result:
                    results[kind].append(result)

        def med(kind: str, key: str, results: dict[str, list[dict]] = results) -> float:
            values = [r[key] for r in results[kind] if key in r]
            return statistics.median(values) if values else float("nan")

        print()
        if part == "read":
            print(f"read {MB} MB of float32 matrices, one thread, median of {args.rounds} "
                  "fresh processes")  # fmt: skip
            print("\n| memory | first pass (GB/s) | warm (GB/s) | in huge pages (MB) |")
            print("|---|---:|---:|---:|")
            for kind in kinds:
                print(f"| {kind} | {med(kind, 'first'):.1f} | {med(kind, 'warm'):.1f} "
                      f"| {med(kind, 'huge_mb'):.0f} |")  # fmt: skip
        else:
            print(f"SmolLM2-135M Q4_1, one thread, median of {args.rounds} fresh processes")
            print("\n| engine | first 16 tokens (tok/s) | next 48 (tok/s) | load (s) |")
            print("|---|---:|---:|---:|")
            for kind in kinds:
                load = med(kind, "load_s")
                print(f"| {kind} | {med(kind, 'cold'):.1f} | {med(kind, 'warm'):.1f} "
                      f"| {'-' if load != load else f'{load:.2f}'} |")  # fmt: skip


if __name__ == "__main__":
    main()
