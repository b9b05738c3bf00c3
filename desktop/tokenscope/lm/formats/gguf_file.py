"""A careful reader of the GGUF container: metadata, tensor directory, tensor bytes.

GGUF (llama.cpp's format) is a little-endian header followed by aligned tensor data:

    "GGUF"  version:u32  n_tensors:u64  n_metadata:u64
    n_metadata x (key:str  type:u32  value)          str = length:u64 + UTF-8 bytes
    n_tensors  x (name:str  n_dims:u32  dims:u64[n_dims]  type:u32  offset:u64)
    padding to `general.alignment` (32), then the tensor data

Why not `gguf.GGUFReader`: it builds a NumPy view for every element of every array and takes
~2.7 s on SmolLM2's 100k tokenizer strings, most of the 3 s load budget; this reader takes a
tenth of that. The `gguf` package still supplies the type tables and the dequantizers.

Every count and size is checked against the bytes that are really there before anything is
allocated, so a truncated or hostile file costs a clear ModelFormatError, never a huge
allocation or a crash. Tensor bytes are memory-mapped, not read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.safe_io import open_file

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
# Far above any real model (a 405B Llama has ~1,100 tensors and ~40 metadata keys) and far
# below what would exhaust memory before the file's own size check catches it.
MAX_TENSORS = 1_000_000
MAX_METADATA = 100_000
DEFAULT_ALIGNMENT = 32
# Strings: keys and names are short; the longest real values are chat templates (~10 KB).
MAX_KEY_BYTES = 1 << 16
MAX_STRING_BYTES = 16 << 20
# Arrays: real vocabularies have up to ~262k tokens and ~500k merges. Each string becomes a
# Python object of ~60 bytes whatever its length, so the count is what bounds memory.
MAX_STRINGS = 1 << 22
MAX_ARRAY_ITEMS = 1 << 28
MAX_ARRAY_NESTING = 4  # arrays of arrays: no real file nests them at all
MAX_DIMENSION = 1 << 40

# value type -> (struct code, size); 8 (string) and 9 (array) are handled apart.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 10: "<u8"}
_NUMPY.update({11: "<i8", 12: "<f8", 7: "<u1"})
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor directory. `shape` is NumPy order (rows last-dim-first reversed).

    GGUF lists dimensions fastest-varying first (ne0 = row length); `shape` reverses that, so a
    matrix stored for `nn.Linear` as (out, in) has shape (out, in) here.
    """

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    offset: int  # from the start of the file
    n_bytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class SkippedStrings:
    """A string array that was not decoded (GGUFFile(..., strings=False)): how many."""

    count: int


class _Cursor:
    """Reads little-endian values from a buffer, refusing to read past its end."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.path = path

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ModelFormatError(
                f"{self.path} is truncated or corrupt: {what} needs {n:,} bytes at offset "
                f"{self.pos:,} but the file has {self.size:,} bytes"
            )

    def scalar(self, kind: int, what: str) -> Any:
        code, size = _SCALARS[kind]
        self.need(size, what)
        (value,) = struct.unpack_from("<" + code, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar(4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(10, what))

    def string(self, what: str, limit: int = MAX_STRING_BYTES) -> str:
        n = self.u64(what)
        self.need(n, what)
        if n > limit:
            raise ModelFormatError(
                f"{self.path} is corrupt: {what} claims a text of {n:,} bytes (at most "
                f"{limit:,} expected)"
            )
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        # A stray invalid byte must not stop the load; tokenizers needs valid text anyway.
        return raw.decode("utf-8", errors="replace")

    def strings(self, count: int, what: str) -> list[str]:
        # The tokenizer's 100k strings make this the hot loop of opening a file: kept tight.
        buf, pos, size = self.buf, self.pos, self.size
        unpack = _U64.unpack_from
        out: list[str] = []
        append = out.append
        for _ in range(count):
            if pos + 8 > size:
                break
            (n,) = unpack(buf, pos)
            pos += 8
            if pos + n > size or n > MAX_STRING_BYTES:
                break
            append(buf[pos : pos + n].decode("utf-8", errors="replace"))
            pos += n
        self.pos = pos
        if len(out) < count:
            self.need(size + 1 - pos, f"{what} (string #{len(out)} of {count:,})")
        return out

    def skip_strings(self, count: int, what: str) -> SkippedStrings:
        """Walk past `count` strings without decoding them (listing a model needs none of its
        vocabulary: 262k strings decoded in a worker thread would hold up the window)."""
        buf, pos, size = self.buf, self.pos, self.size
        unpack = _U64.unpack_from
        for i in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(9, f"{what} (string #{i} of {count:,})")
            (n,) = unpack(buf, pos)
            pos += 8 + n
            if pos > size or n > MAX_STRING_BYTES:
                self.pos = pos - n
                self.need(n, f"{what} (string #{i} of {count:,})")
        self.pos = pos
        return SkippedStrings(count)

    def value(self, kind: int, what: str, nesting: int = 0, decode: bool = True) -> Any:
        if kind in _SCALARS:
            return self.scalar(kind, what)
        if kind == _STRING:
            return self.string(what)
        if kind != _ARRAY:
            raise ModelFormatError(f"{self.path}: {what} has unknown value type {kind}")
        if nesting >= MAX_ARRAY_NESTING:
            raise ModelFormatError(
                f"{self.path} is corrupt: {what} nests arrays more than {MAX_ARRAY_NESTING} deep"
            )
        item_kind = self.u32(what)
        count = self.u64(what)
        if item_kind in _NUMPY:
            size = _SCALARS[item_kind][1]
            self.need(count * size, f"{what} ({count:,} items)")
            if count > MAX_ARRAY_ITEMS:
                raise ModelFormatError(
                    f"{self.path}: {what} has {count:,} items "
                    f"(at most {MAX_ARRAY_ITEMS:,} expected)"
                )
            dtype = _NUMPY[item_kind]
            array = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            self.pos += count * size
            return array.astype(bool) if item_kind == 7 else array.copy()
        if item_kind == _STRING:
            # Each string takes at least its 8-byte length: checked before the loop runs.
            self.need(count * 8, f"{what} ({count:,} strings)")
            if count > MAX_STRINGS:
                raise ModelFormatError(
                    f"{self.path}: {what} has {count:,} strings (at most {MAX_STRINGS:,} expected)"
                )
            return self.strings(count, what) if decode else self.skip_strings(count, what)
        if item_kind == _ARRAY:
            self.need(count * 12, f"{what} ({count:,} arrays)")
            if count > MAX_STRINGS:
                raise ModelFormatError(f"{self.path}: {what} has {count:,} arrays")
            return [self.value(_ARRAY, what, nesting + 1) for _ in range(count)]
        raise ModelFormatError(f"{self.path}: {what} has unknown array item type {item_kind}")


class GGUFFile:
    """An opened GGUF file: `metadata` (key -> value), `tensors` (name -> TensorInfo).

    Use as a context manager or call close(); arrays from tensor_bytes() must not outlive it.
    """

    def __init__(self, path: str | Path, *, strings: bool = True) -> None:
        """`strings=False` leaves string arrays (the vocabulary) undecoded: for listing."""
        self.path = Path(path)
        self._decode_strings = strings
        self._file = open_file(self.path, "a GGUF model file")
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < 24:
                raise ModelFormatError(f"{self.path} is not a GGUF file: it has only {size} bytes")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.file_size = size
            self._parse()
        except BaseException:
            self.close()
            raise

    def _parse(self) -> None:
        cur = _Cursor(self._map, self.path)
        magic = bytes(self._map[:4])
        if magic != MAGIC:
            raise ModelFormatError(
                f"{self.path} is not a GGUF file: it starts with {magic!r}, not {MAGIC!r}"
            )
        cur.pos = 4
        version = cur.u32("the version")
        if version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if version > 0xFFFF else ""
            raise ModelFormatError(
                f"{self.path} is GGUF version {version}{hint}; Tokenscope reads versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
            )
        self.version = version
        n_tensors, n_kv = cur.u64("the tensor count"), cur.u64("the metadata count")
        if n_tensors > MAX_TENSORS or n_kv > MAX_METADATA:
            raise ModelFormatError(
                f"{self.path} declares {n_tensors:,} tensors and {n_kv:,} metadata entries; "
                "that is not a real model (corrupt header)"
            )
        self.metadata: dict[str, Any] = {}
        for i in range(n_kv):
            key = cur.string(f"metadata key #{i}", MAX_KEY_BYTES)
            kind = cur.u32(f"the type of {key!r}")
            if key in self.metadata:
                raise ModelFormatError(f"{self.path} is corrupt: metadata {key!r} appears twice")
            self.metadata[key] = cur.value(kind, f"metadata {key!r}", 0, self._decode_strings)
        infos = []
        names = set()
        for i in range(n_tensors):
            name = cur.string(f"tensor name #{i}", MAX_KEY_BYTES)
            if name in names:
                raise ModelFormatError(f"{self.path} is corrupt: tensor {name!r} appears twice")
            names.add(name)
            n_dims = cur.u32(f"the rank of {name!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise ModelFormatError(f"{self.path}: tensor {name!r} has {n_dims} dimensions")
            dims = [cur.u64(f"the shape of {name!r}") for _ in range(n_dims)]
            if not all(1 <= d <= MAX_DIMENSION for d in dims):
                raise ModelFormatError(
                    f"{self.path} is corrupt: tensor {name!r} has the shape "
                    f"{tuple(reversed(dims))} (every dimension must be 1..{MAX_DIMENSION:,})"
                )
            raw_type = cur.u32(f"the type of {name!r}")
            offset = cur.u64(f"the offset of {name!r}")
            infos.append((name, dims, raw_type, offset))
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (
            not isinstance(alignment, int)
            or isinstance(alignment, bool)
            or not 1 <= alignment <= 1 << 20
            or alignment & (alignment - 1)
        ):
            raise ModelFormatError(f"{self.path}: general.alignment {alignment!r} is invalid")
        data_start = -(-cur.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, dims, raw_type, offset in infos:
            self.tensors[name] = self._tensor_info(name, dims, raw_type, data_start + offset)

    def _tensor_info(self, name: str, dims: list[int], raw_type: int, start: int) -> TensorInfo:
        try:
            qtype = GGMLQuantizationType(raw_type)
        except ValueError:
            raise ModelFormatError(
                f"{self.path}: tensor {name!r} has unknown type {raw_type}"
            ) from None
        if qtype not in GGML_QUANT_SIZES:
            raise ModelFormatError(
                f"{self.path}: tensor {name!r} has unsupported type {qtype.name}"
            )
        block, type_size = GGML_QUANT_SIZES[qtype]
        n = 1
        for d in dims:
            n *= d
        if dims[0] % block:
            raise ModelFormatError(
                f"{self.path}: tensor {name!r} rows of {dims[0]} do not fill {qtype.name} "
                f"blocks of {block}"
            )
        n_bytes = n // block * type_size
        if start + n_bytes > self.file_size:
            raise ModelFormatError(
                f"{self.path} is truncated or corrupt: tensor {name!r} ({qtype.name}, shape "
                f"{tuple(reversed(dims))}) needs bytes up to {start + n_bytes:,} but the file "
                f"has {self.file_size:,}"
            )
        return TensorInfo(name, tuple(reversed(dims)), qtype, start, n_bytes)

    def tensor_bytes(self, info: TensorInfo) -> np.ndarray:
        """The raw bytes of a tensor as a read-only uint8 array (rows, bytes per row)."""
        rows = info.n_elements // info.shape[-1]
        data = np.frombuffer(self._map, dtype=np.uint8, count=info.n_bytes, offset=info.offset)
        return data.reshape(rows, info.n_bytes // rows) if rows else data

    def release(self, info: TensorInfo) -> None:
        """Tell the kernel a tensor's pages are no longer needed, so that a file read once,
        tensor by tensor, does not stay resident as a whole while the model is built."""
        m = getattr(self, "_map", None)
        advise = getattr(mmap, "MADV_DONTNEED", None)
        if m is None or advise is None or m.closed:
            return
        page = mmap.PAGESIZE
        start = info.offset - info.offset % page
        end = min(self.file_size, info.offset + info.n_bytes)
        with contextlib.suppress(OSError, ValueError):
            m.madvise(advise, start, end - start)

    def close(self) -> None:
        """Release the memory map and the file."""
        m = getattr(self, "_map", None)
        if m is not None:
            # An array may still view the map; it is then freed when that array is.
            with contextlib.suppress(BufferError):
                m.close()
        if hasattr(self, "_file"):
            self._file.close()

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
