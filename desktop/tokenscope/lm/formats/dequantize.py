"""GGUF tensor bytes to float32 torch tensors.

The types SmolLM2-style files use most (Q8_0, Q4_0, Q4_1 and the float types) are decoded
here with torch, several times faster than `gguf.quants` (which is NumPy, one thread): the
embedding alone took 0.67 s there. Every other supported type goes through `gguf.quants`.
Tests check that both paths give identical numbers.

Block layouts (llama.cpp's ggml-common.h), 32 weights per block:
    Q8_0  d:f16, q:int8[32]                 w = d * q
    Q4_0  d:f16, q:u8[16] (two 4-bit each)  w = d * (q - 8)   low nibbles are weights 0..15
    Q4_1  d:f16, m:f16, q:u8[16]            w = d * q + m     high nibbles weights 16..31
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize

from tokenscope.lm.errors import ModelFormatError

SUPPORTED = (
    Q.F32, Q.F16, Q.BF16, Q.F64, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1,
    Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K,
)  # fmt: skip


def _writable(raw: np.ndarray) -> torch.Tensor:
    # The bytes are a read-only view of the file's memory map; torch wants its own copy.
    return torch.from_numpy(np.array(raw, copy=True))


def _blocks(raw: np.ndarray, block_bytes: int) -> torch.Tensor:
    return _writable(raw).reshape(-1, block_bytes)


def _f16(t: torch.Tensor) -> torch.Tensor:
    """Column(s) of bytes holding little-endian float16 values, as float32 (n, 1)."""
    return t.contiguous().view(torch.float16).float()


def _nibbles(q: torch.Tensor) -> torch.Tensor:
    """(n, 16) bytes -> (n, 32) values 0..15: low nibbles first, then high nibbles."""
    return torch.cat([q & 0x0F, q >> 4], dim=1)


def _q8_0(raw: np.ndarray) -> torch.Tensor:
    b = _blocks(raw, 34)
    return _f16(b[:, :2]) * b[:, 2:].view(torch.int8).float()


def _q4_0(raw: np.ndarray) -> torch.Tensor:
    b = _blocks(raw, 18)
    return _f16(b[:, :2]) * (_nibbles(b[:, 2:]).float() - 8.0)


def _q4_1(raw: np.ndarray) -> torch.Tensor:
    b = _blocks(raw, 20)
    return _f16(b[:, :2]) * _nibbles(b[:, 4:]).float() + _f16(b[:, 2:4])


def _as(dtype: torch.dtype) -> Callable[[np.ndarray], torch.Tensor]:
    def decode(raw: np.ndarray) -> torch.Tensor:
        values = _writable(raw).view(dtype)
        return values if dtype == torch.float32 else values.float()

    return decode


_TORCH = {
    Q.F32: _as(torch.float32),
    Q.F16: _as(torch.float16),
    Q.BF16: _as(torch.bfloat16),
    Q.Q8_0: _q8_0,
    Q.Q4_0: _q4_0,
    Q.Q4_1: _q4_1,
}


def check_readable(qtype: Q, name: str = "") -> None:
    """Refuse a tensor type this module cannot decode, naming the tensor and the readable ones."""
    if qtype not in SUPPORTED:
        names = ", ".join(t.name for t in SUPPORTED)
        raise ModelFormatError(
            f"tensor {name!r} is {qtype.name}, which Tokenscope cannot read (it reads {names})"
        )


def dequantize(raw: np.ndarray, qtype: Q, shape: tuple[int, ...], name: str = "") -> torch.Tensor:
    """float32 tensor of `shape` from a tensor's raw GGUF bytes; a fresh, writable copy."""
    check_readable(qtype, name)
    decode = _TORCH.get(qtype)
    if decode is not None:
        values = decode(raw)
    else:
        values = torch.from_numpy(np.asarray(gguf_dequantize(raw, qtype), dtype=np.float32))
    return values.reshape(shape)
