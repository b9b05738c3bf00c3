"""Packed weights kept beside a model: the second load maps them instead of packing again.

Packing a GGUF file (tokenscope.lm.formats.gguf_packing) takes ~1.5 s for SmolLM2 and puts
the weights in fresh anonymous memory. Once a model is packed, its layers' tensors are
written to one file in the cache folder; the next load maps that file (private,
copy-on-write) and builds the layers over the mapping, so

  - loading is reading a header and mapping a file (SmolLM2: ~0.3 s, the tokenizer included);
  - the weights live in the page cache, as llama.cpp's do (it maps its GGUF file): shared
    between processes, read back from disk by the kernel instead of swapped, and laid out in
    one region (huge pages where the kernel gives them, see `doctor`'s memory report).

A cache file is used only while it belongs to the same model file (path, size and
modification time), the same packing mode, PyTorch version and CPU kind (the int4 kernel's
layout depends on them) and the same packing code (a fingerprint of its source); anything
else, or any file that does not read back exactly as described, is ignored and packed again.
fbgemm's float16 matrices cannot be mapped (their packed form is private to fbgemm): they are
stored as float16 and packed again at load.
At most KEEP files are kept, the least recently used are removed first.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokenscope.lm import packed as pk

FORMAT = 1
MAGIC = b"TSPACK1\n"
ALIGN = 4096  # each tensor starts on a page of its own
DATA_ALIGN = 2 << 20  # and the data on a 2 MB boundary, where huge pages can map it
MAX_HEADER = 16 << 20
KEEP = 4
_DTYPES = {
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int32": torch.int32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}


def enabled() -> bool:
    """Whether packed weights are kept at all (TOKENSCOPE_PACKED_CACHE=0 turns it off)."""
    return os.environ.get("TOKENSCOPE_PACKED_CACHE") != "0"


def folder() -> Path:
    """Where packed weights are kept: beside TOKENSCOPE_HOME's files when it is set (tests,
    portable installs), else in the platform's cache folder."""
    from tokenscope.paths import cache_dir

    home = os.environ.get("TOKENSCOPE_HOME")
    return (Path(home).expanduser() / "cache" if home else cache_dir()) / "packed"


@functools.cache
def _code_version() -> str:
    """The packing code's own fingerprint: a cache made by other packing code is not used."""
    from tokenscope.lm.formats import dequantize, gguf_packing

    digest = hashlib.sha256()
    for module in (pk, gguf_packing, dequantize):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def key_for(model_file: Path, mode: str) -> dict[str, Any]:
    """What a cache file must have been made from to be used for `model_file`."""
    st = model_file.stat()
    return {
        "format": FORMAT,
        "code": _code_version(),
        "file": str(model_file.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "mode": mode,
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }


def path_for(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return folder() / f"{digest}.tspack"


# ----- writing ----------------------------------------------------------------------------------


class _Tensors:
    """The tensors of a file being written, with their offsets from the data's start."""

    def __init__(self) -> None:
        self.items: list[tuple[torch.Tensor, int]] = []  # (tensor, offset)
        self.end = 0

    def add(self, t: torch.Tensor) -> list[Any]:
        t = t.detach().contiguous()
        offset = -(-self.end // ALIGN) * ALIGN
        self.items.append((t, offset))
        self.end = offset + t.numel() * t.element_size()
        return [str(t.dtype).removeprefix("torch."), list(t.shape), offset]


def _record(module: nn.Module, tensors: _Tensors) -> dict[str, Any]:
    buffers = {n: b for n, b in module.named_buffers(recurse=False) if b is not None}
    if isinstance(module, pk.SlicedHead):
        return {"kind": "sliced", "parts": [_record(p, tensors) for p in module.parts]}
    if isinstance(module, pk.ColumnSplit):
        parts = [_record(module.first, tensors), _record(module.rest, tensors)]
        return {"kind": "columns", "attrs": {"split": module.split}, "parts": parts}
    if isinstance(module, pk.Fp16Linear):
        source = getattr(module, "source", None)
        if source is None:
            raise ValueError("an fp16 layer without its float16 weights")
        return {"kind": "fp16", "tensors": {"weight": tensors.add(source)}}
    kinds = {
        pk.Int8Linear: "int8",
        pk.Int4Linear: "int4",
        pk.HalfLinear: "half",
        pk.GroupEmbedding: "group_embedding",
        pk.HalfEmbedding: "half_embedding",
    }
    kind = next(k for cls, k in kinds.items() if isinstance(module, cls))
    attrs = {
        a: getattr(module, a)
        for a in ("out_features", "in_features", "padded", "bits")
        if isinstance(getattr(module, a, None), int)
    }
    return {
        "kind": kind,
        "attrs": attrs,
        "tensors": {n: tensors.add(b) for n, b in buffers.items()},
    }


def packed_modules(transformer: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(path, layer) of every packed layer, a sliced head as one."""
    skip: set[str] = set()
    for path, m in transformer.named_modules():
        if any(path.startswith(s + ".") for s in skip):
            continue
        if isinstance(m, pk.PACKED_TYPES):
            skip.add(path)
            yield path, m


def save(transformer: nn.Module, key: dict[str, Any], done: set[str], label: str) -> Path:
    """Write the packed layers of `transformer` (loaded from the file `key` names); atomic."""
    tensors = _Tensors()
    modules = {path: _record(m, tensors) for path, m in packed_modules(transformer)}
    header = json.dumps(
        {"key": key, "label": label, "done": sorted(done), "modules": modules}
    ).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // DATA_ALIGN) * DATA_ALIGN
    target = path_for(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(header)) + header)
            for t, offset in tensors.items:
                f.seek(start + offset)
                f.write(t.view(-1).view(torch.uint8).numpy().tobytes())
            f.truncate(start + tensors.end)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _evict(target)
    return target


def _evict(keep: Path) -> None:
    files = sorted(keep.parent.glob("*.tspack"), key=lambda p: p.stat().st_atime, reverse=True)
    for old in [p for p in files if p != keep][KEEP - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()


# ----- reading ----------------------------------------------------------------------------------


class CacheMismatch(ValueError):
    """The cache file is not for this model, or does not read back as described."""


def open_mapping(path: Path) -> tuple[dict[str, Any], torch.Tensor, mmap.mmap, int]:
    """(header, the data as a uint8 tensor over a private mapping, the mapping, where in the
    mapping the data starts)."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 8)
        if len(head) != len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
            raise CacheMismatch("not a packed-weights file")
        (n,) = struct.unpack("<Q", head[len(MAGIC) :])
        if n > MAX_HEADER:
            raise CacheMismatch("header too large")
        raw = f.read(n)
        if len(raw) != n:
            raise CacheMismatch("header cut short")
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheMismatch(f"header unreadable ({e})") from None
        start = -(-(len(MAGIC) + 8 + n) // DATA_ALIGN) * DATA_ALIGN
        size = os.fstat(f.fileno()).st_size
        if size <= start:
            raise CacheMismatch("no data")
        mapping = mmap.mmap(
            f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
    for advice in ("MADV_HUGEPAGE", "MADV_WILLNEED"):
        if hasattr(mmap, advice):
            with contextlib.suppress(OSError):
                mapping.madvise(getattr(mmap, advice))
    data = torch.frombuffer(mapping, dtype=torch.uint8)[start:]
    return header, data, mapping, start


def _tensor(data: torch.Tensor, spec: Any) -> torch.Tensor:
    try:
        name, shape, offset = spec
        dtype = _DTYPES[name]
        shape = [int(s) for s in shape]
        offset = int(offset)
    except (TypeError, ValueError, KeyError):
        raise CacheMismatch(f"bad tensor entry {str(spec)[:60]}") from None
    itemsize = torch.empty(0, dtype=dtype).element_size()
    count = 1
    for s in shape:
        if s < 0:
            raise CacheMismatch("negative size")
        count *= s
    if offset < 0 or offset % ALIGN or offset + count * itemsize > data.numel():
        raise CacheMismatch("a tensor lies outside the file")
    return data[offset : offset + count * itemsize].view(dtype).view(shape)


def _touch(t: torch.Tensor) -> None:
    """Map every page of a layer's tensor now, not during the first tokens (an embedding's
    pages are left to be mapped as rows are looked up: most never are)."""
    flat = t.view(-1).view(torch.uint8)
    flat[:: mmap.PAGESIZE].sum()


def _bare(cls: type[nn.Module], attrs: dict[str, Any]) -> Any:
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    for name, value in attrs.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise CacheMismatch(f"bad attribute {name}")
        setattr(module, name, value)
    return module


def _build(record: Any, data: torch.Tensor) -> nn.Module:
    if not isinstance(record, dict):
        raise CacheMismatch("bad module entry")
    kind = record.get("kind")
    if kind == "sliced":
        return pk.SlicedHead([_build(p, data) for p in record.get("parts", [])])
    if kind == "columns":
        try:
            first, rest = (_build(p, data) for p in record["parts"])
            return pk.ColumnSplit(first, rest, int(record["attrs"]["split"]))
        except (KeyError, TypeError, ValueError):
            raise CacheMismatch("bad column split") from None
    t = {n: _tensor(data, s) for n, s in dict(record.get("tensors", {})).items()}
    attrs = dict(record.get("attrs", {}))
    if kind not in ("group_embedding", "half_embedding", "fp16"):
        for tensor in t.values():
            _touch(tensor)
    try:
        if kind == "fp16":
            return pk.Fp16Linear(t["weight"].float())
        if kind == "group_embedding":
            return pk.GroupEmbedding(pk.Groups(t["q"], t["scale"], t["bias"], attrs["bits"]))
        if kind == "half_embedding":
            return pk.HalfEmbedding(t["weight"])
        cls: type[nn.Module] = {
            "int8": pk.Int8Linear,
            "int4": pk.Int4Linear,
            "half": pk.HalfLinear,
        }[str(kind)]
        module = _bare(cls, attrs)  # (Any: its attributes are set here)
        module.bias = None
        for name in ("packed", "scale_zero", "zeros", "weight"):
            if name in t or (name == "zeros" and cls is not pk.HalfLinear):
                module.register_buffer(name, t.get(name), persistent=False)
        return module  # type: ignore[no-any-return]
    except (KeyError, TypeError) as e:
        raise CacheMismatch(f"incomplete {kind} entry ({e})") from None


def _release_fp16_sources(modules: dict[str, Any], mapping: mmap.mmap, start: int) -> None:
    """fbgemm copied the float16 weights into its own packing: their pages of the mapping are
    given back (they would otherwise stay resident beside the copy, 55 MB for a SmolLM2-sized
    head); they are never read again."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return

    def walk(record: dict[str, Any]) -> None:
        if record.get("kind") == "fp16":
            _, shape, offset = record["tensors"]["weight"]
            size = 2 * int(torch.tensor(shape).prod())
            length = size // mmap.PAGESIZE * mmap.PAGESIZE  # whole pages inside the tensor
            if length:
                with contextlib.suppress(OSError, ValueError):
                    mapping.madvise(mmap.MADV_DONTNEED, start + int(offset), length)
        for part in record.get("parts", []):
            walk(part)

    for record in modules.values():
        walk(record)


def load(model_file: Path, mode: str) -> tuple[dict[str, nn.Module], set[str], str, mmap.mmap]:
    """(layers by path, state-dict names they fill, the packing label, the mapping to keep
    open) from the cache file for `model_file`; CacheMismatch or OSError when there is none
    that fits."""
    key = key_for(model_file, mode)
    header, data, mapping, start = open_mapping(path_for(key))
    if header.get("key") != key:
        raise CacheMismatch("made from another file or setup")
    modules = {str(p): _build(r, data) for p, r in dict(header.get("modules", {})).items()}
    _release_fp16_sources(header["modules"], mapping, start)
    done = {str(n) for n in header.get("done", [])}
    label = header.get("label")
    if not modules or not isinstance(label, str):
        raise CacheMismatch("empty")
    with contextlib.suppress(OSError):
        os.utime(path_for(key))  # recently used: kept longest
    return modules, done, label, mapping
