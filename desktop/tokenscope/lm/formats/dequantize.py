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
from typing import TYPE_CHECKING

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize

from tokenscope.lm.errors import ModelFormatError

if TYPE_CHECKING:
    from tokenscope.lm.packed import Groups

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


# ----- group form (kept small in memory, see tokenscope.lm.packed) -----------------------------
# Q4_K (256 weights per block): d:f16, dmin:f16, 12 bytes of 6-bit scales and mins for its
# eight sub-blocks of 32, then 128 bytes of nibbles; sub-block j: w = d*sc[j]*q - dmin*m[j].

FOUR_BIT = (Q.Q4_0, Q.Q4_1, Q.Q4_K)
GROUP_TYPES = (Q.Q8_0, *FOUR_BIT)


def _q4_k_scales(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 12) packed bytes -> scales and mins (n, 8), each 0..63."""
    s = s.to(torch.int32)
    a, b, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    scales = torch.cat([a & 0x3F, (c & 0x0F) | ((a >> 2) & 0x30)], dim=1)
    mins = torch.cat([b & 0x3F, (c >> 4) | ((b >> 2) & 0x30)], dim=1)
    return scales.float(), mins.float()


def groups(raw: np.ndarray, qtype: Q, shape: tuple[int, ...], name: str = "") -> Groups:
    """A 2-D tensor of a group type as tokenscope.lm.packed.Groups (exact, no rounding)."""
    from tokenscope.lm.packed import GROUP, Groups

    if qtype not in GROUP_TYPES or len(shape) != 2 or shape[1] % GROUP:
        raise ValueError(f"{name}: {qtype.name} {shape} is not a group type")
    rows, cols = shape
    n = rows * cols // GROUP
    if qtype == Q.Q8_0:
        b = _blocks(raw, 34)
        q, scale, bias = b[:, 2:].view(torch.int8), _f16(b[:, :2]), None
    elif qtype == Q.Q4_0:
        b = _blocks(raw, 18)
        q, scale = _nibbles(b[:, 2:]), _f16(b[:, :2])
        bias = -8.0 * scale
    elif qtype == Q.Q4_1:
        b = _blocks(raw, 20)
        q, scale, bias = _nibbles(b[:, 4:]), _f16(b[:, :2]), _f16(b[:, 2:4])
    else:  # Q4_K
        b = _blocks(raw, 144)
        d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
        sc, m = _q4_k_scales(b[:, 4:16])
        scale, bias = d * sc, -(dmin * m)  # (blocks, 8)
        nib = b[:, 16:].reshape(-1, 4, 32)  # four chunks of 32 bytes: low, then high nibbles
        q = torch.stack([nib & 0x0F, nib >> 4], dim=2)  # (blocks, 4, 2, 32)
    q = q.reshape(rows, cols)
    scale = scale.reshape(rows, cols // GROUP)
    bias = torch.zeros_like(scale) if bias is None else bias.reshape(rows, cols // GROUP)
    assert q.numel() == n * GROUP
    return Groups(
        q.contiguous(), scale.contiguous(), bias.contiguous(), 8 if qtype == Q.Q8_0 else 4
    )
