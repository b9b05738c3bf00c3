"""Minimal writers for GGUF and safetensors that write whatever they are given.

The real writers (gguf.GGUFWriter, safetensors.save_file) refuse inconsistent input; a fuzzer
needs files with wrong counts, wrong types, absurd shapes and offsets. So the seed files are
described as plain data (GGUFSpec, a safetensors header dict plus bytes), mutated as data,
and serialised here byte for byte. Only the standard library and NumPy are used.
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_STRUCT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
           U64: "Q", I64: "q", F64: "d"}  # fmt: skip
ALIGNMENT = 32


@dataclass
class GGUFSpec:
    """A GGUF file as data. `metadata`: (key, type, value); arrays are (ARRAY, (item, list)).

    `tensors`: (name, dims with the fastest-varying first, GGML type, raw bytes). The
    `*_override` fields write a header that disagrees with the lists that follow it.
    """

    metadata: list[tuple[str, int, Any]] = field(default_factory=list)
    tensors: list[tuple[str, list[int], int, bytes]] = field(default_factory=list)
    version: int = 3
    n_tensors_override: int | None = None
    n_kv_override: int | None = None
    offset_overrides: dict[int, int] = field(default_factory=dict)  # tensor index -> offset

    def copy(self) -> GGUFSpec:
        return copy.deepcopy(self)

    def get(self, key: str) -> Any:
        for k, _, value in self.metadata:
            if k == key:
                return value
        return None

    def set(self, key: str, kind: int, value: Any) -> None:
        for i, (k, _, _) in enumerate(self.metadata):
            if k == key:
                self.metadata[i] = (key, kind, value)
                return
        self.metadata.append((key, kind, value))


def _string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _scalar(kind: int, value: Any) -> bytes:
    code = _STRUCT[kind]
    if not isinstance(value, (int, float)):  # a value of another type: some number instead
        value = len(value) if hasattr(value, "__len__") else 0
    if code in "fd":
        with np.errstate(over="ignore"):  # 1e300 as float32 is infinity, as a writer would store
            return np.array([value], dtype="<f4" if code == "f" else "<f8").tobytes()
    if code == "?":
        return struct.pack("<B", int(bool(value)) if isinstance(value, bool) else int(value) & 0xFF)
    bits = struct.calcsize(code) * 8
    value = int(value) if value == value and abs(value) != float("inf") else 0
    if code.isupper():
        value %= 1 << bits
    else:
        value = (value + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return struct.pack("<" + code, value)


class Raw(bytes):
    """Value bytes written as they are, after the type (e.g. arrays nested 5000 deep)."""


def gguf_value(kind: int, value: Any) -> bytes:
    """The bytes of one metadata value of a GGUF type (any value is forced into the type)."""
    if isinstance(value, Raw):
        return bytes(value)
    if kind == STRING:
        return _string(value if isinstance(value, (str, bytes)) else str(value))
    if kind == ARRAY:
        item, items = value
        out = struct.pack("<IQ", item, len(items))
        return out + b"".join(gguf_value(item, v) for v in items)
    if kind in _STRUCT:
        return _scalar(kind, value)
    return b""  # an unknown type: no value bytes at all


def write_gguf(spec: GGUFSpec) -> bytes:
    """Serialise a GGUFSpec: header, metadata, tensor directory, aligned tensor data."""
    n_tensors = len(spec.tensors) if spec.n_tensors_override is None else spec.n_tensors_override
    n_kv = len(spec.metadata) if spec.n_kv_override is None else spec.n_kv_override
    out = bytearray(b"GGUF")
    out += struct.pack("<I", spec.version % (1 << 32))
    out += struct.pack("<QQ", n_tensors % (1 << 64), n_kv % (1 << 64))
    for key, kind, value in spec.metadata:
        out += _string(key) + struct.pack("<I", kind % (1 << 32)) + gguf_value(kind, value)
    offset = 0
    for index, (name, dims, qtype, data) in enumerate(spec.tensors):
        written = spec.offset_overrides.get(index, offset)
        out += _string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d % (1 << 64)) for d in dims)
        out += struct.pack("<IQ", qtype % (1 << 32), written % (1 << 64))
        offset += -(-len(data) // ALIGNMENT) * ALIGNMENT
    out += bytes(-len(out) % ALIGNMENT)
    for _, _, _, data in spec.tensors:
        out += data + bytes(-len(data) % ALIGNMENT)
    return bytes(out)


# ----- safetensors ----------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
                      "BOOL": np.bool_}  # fmt: skip


def safetensors_parts(tensors: dict[str, np.ndarray]) -> tuple[dict[str, Any], bytes]:
    """(header, data) of a safetensors file holding `tensors` (float32 NumPy arrays)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    return header, bytes(data)


def write_safetensors(header: Any, data: bytes, *, header_text: str | None = None) -> bytes:
    """A safetensors file: 8-byte header length, JSON header (padded with spaces), data."""
    text = header_text if header_text is not None else json.dumps(header, separators=(",", ":"))
    raw = text.encode("utf-8", errors="surrogatepass")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data
