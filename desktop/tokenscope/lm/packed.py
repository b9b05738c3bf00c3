"""Weights kept small in memory: 4-bit groups, fbgemm float16 and (out, in) half layers.

Decoding one token reads every weight once, so its speed is set by how many bytes the
weights take. A GGUF file already stores them in 4, 5, 6 or 8 bits; dequantizing them to
float32 at load made SmolLM2's 98 MB file ~540 MB in memory and ~4x slower than llama.cpp.
Here they stay small:

    Int4Linear     4-bit values in groups of 32 along the input, a scale and a zero point
                   per group: torch's CPU kernel `_weight_int4pack_mm_for_cpu`, which computes
                   w = (q - 8) * scale + zero. GGUF's Q4_0, Q4_1 and Q4_K blocks are exactly
                   such groups, so they are repacked, not re-quantized. The kernel is fast with
                   bfloat16 activations only (float32 ones fall back to scalar code, ~30x
                   slower), so activations are rounded to bfloat16 for these matmuls.
    Fp16Linear     float16 weights packed for fbgemm's fp16 GEMM (float32 activations):
                   5-, 6- and 8-bit blocks, float16 tensors, and an output head the file
                   stores in float (the head sees the whole vocabulary).
    Int8Linear     8-bit groups (Q8_0: an output head tied to a Q8_0 embedding, as llama.cpp
                   reads it) exactly, as two 4-bit planes for the int4 kernel: q + 128 =
                   16 * high + low, so w = 16 s (high - 8) + s (low - 8) + 8 s. Half the bytes
                   of float16 (1.25 a weight with the scales), no rounding of the weights.
    HalfLinear     bfloat16 or float16 weights laid out (out, in) for F.linear: the fallback
                   where the packed kernels are missing (CUDA, builds without fbgemm), and
                   the bfloat16 mode. Half weights multiply ~10x faster in this layout than in
                   Dense's (in, out) layout on the CPU.
    GroupEmbedding token rows kept as 8- or 4-bit groups, decoded to float32 on lookup.

`Groups` is the common form of a group-quantized matrix: w = q * scale + bias for each group
of 32 consecutive inputs, with q small integers. Every module here holds its tensors as
non-persistent buffers: they are not part of the state dict (a packed model cannot be saved;
load the file in float32 for that).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from tokenscope.lm.heap import trim

if TYPE_CHECKING:
    from tokenscope.lm.model import Block, Dense, Transformer

GROUP = 32
# The output head is split into slices of this many rows: packing a slice needs it in float32
# (38 MB here, instead of 113 MB for SmolLM2's whole 49,152 x 576 head). Each slice costs a
# call per token: 4,096-row slices made SmolLM2's fp16 head 3.0 ms a token instead of 1.8.
HEAD_SLICE_ROWS = 16384


@dataclass
class Groups:
    """A (rows, cols) matrix as w = q * scale + bias per group of GROUP columns.

    q: (rows, cols) small integers (uint8 0..15 for 4-bit, int8 for 8-bit);
    scale, bias: (rows, cols // GROUP) float32.
    """

    q: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor
    bits: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.q.shape[0], self.q.shape[1])

    def dequantize(self) -> torch.Tensor:
        rows, cols = self.shape
        q = self.q.float().view(rows, cols // GROUP, GROUP)
        return (q * self.scale[..., None] + self.bias[..., None]).view(rows, cols)

    def take_rows(self, index: torch.Tensor) -> Groups:
        return Groups(self.q[index], self.scale[index], self.bias[index], self.bits)

    def rows(self, start: int, stop: int) -> Groups:
        return Groups(self.q[start:stop], self.scale[start:stop], self.bias[start:stop], self.bits)

    def planes(self) -> Groups:
        """8-bit groups as 4-bit groups over twice the columns, exactly (see Int8Linear):
        columns 0..C-1 hold the high nibbles of q + 128, C..2C-1 the low ones."""
        if self.bits != 8:
            raise ValueError("planes() splits 8-bit groups")
        u = self.q.to(torch.int16) + 128  # 0..255
        q = torch.cat([u >> 4, u & 15], dim=1).to(torch.uint8)
        scale = torch.cat([16 * self.scale, self.scale], dim=1)
        bias = torch.cat([self.bias - 128 * self.scale, torch.zeros_like(self.bias)], dim=1)
        return Groups(q, scale, bias, 4)

    @staticmethod
    def cat(parts: Sequence[Groups]) -> Groups:
        """Stacked along the rows (q, k, v into one qkv matrix); the widest q type wins."""
        bits = max(p.bits for p in parts)
        dtype = torch.int8 if any(p.q.dtype == torch.int8 for p in parts) else torch.uint8
        return Groups(
            torch.cat([p.q.to(dtype) for p in parts]),
            torch.cat([p.scale for p in parts]),
            torch.cat([p.bias for p in parts]),
            bits,
        )

    @staticmethod
    def quantize4(w: torch.Tensor) -> Groups:
        """Round a float (rows, cols) matrix to 4-bit groups (min/max per group, to nearest).

        For models whose file holds more bits than 4 (or float weights) and the person asked
        for int4: this loses information, unlike repacking a 4-bit GGUF block.
        """
        rows, cols = w.shape
        g = w.float().view(rows, cols // GROUP, GROUP)
        low, high = g.amin(dim=-1), g.amax(dim=-1)
        scale = ((high - low) / 15).clamp(min=1e-12)
        q = torch.round((g - low[..., None]) / scale[..., None]).clamp_(0, 15)
        return Groups(q.to(torch.uint8).view(rows, cols), scale, low, 4)


def _quiet_stderr() -> contextlib.AbstractContextManager[None]:
    """fbgemm's fp16 functions print a one-time C++ deprecation notice on standard error;
    a person running `tokenscope predict` should not see it."""

    @contextlib.contextmanager
    def quiet() -> Iterator[None]:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    return quiet()


@functools.cache
def int4_available() -> bool:
    """Whether this torch has the CPU int4 group kernel (and it computes what it should)."""
    try:
        q = torch.arange(16 * 32, dtype=torch.int32).remainder(16).view(16, 32)
        packed = torch._convert_weight_to_int4pack_for_cpu(q, 1)
        scales = torch.arange(1, 17, dtype=torch.float32)
        sz = torch.stack([scales, torch.zeros(16)], dim=-1)[None].to(torch.bfloat16)
        x = torch.ones(1, 32, dtype=torch.bfloat16)
        y = torch._weight_int4pack_mm_for_cpu(x, packed, GROUP, sz).float()
        expected = ((q.float() - 8) * scales[:, None]).sum(dim=1)
        return bool(torch.allclose(y[0], expected))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.cache
def fp16_available() -> bool:
    """Whether this torch has fbgemm's fp16 GEMM (x86 builds do; ARM builds do not)."""
    try:
        with _quiet_stderr():
            w = torch.eye(4)
            packed = torch.ops._quantized.wrapped_fbgemm_pack_gemm_matrix_fp16(w)
            y = torch.ops._quantized.wrapped_fbgemm_linear_fp16_weight(
                torch.ones(1, 4), packed, None, 4
            )
        return bool(torch.allclose(y, torch.ones(1, 4)))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class Int4Linear(nn.Module):
    """y = x W^T + b with W as 4-bit groups of 32 (see the module notes)."""

    packed: torch.Tensor
    scale_zero: torch.Tensor
    zeros: torch.Tensor | None

    def __init__(self, groups: Groups, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        if groups.bits != 4:
            raise ValueError("Int4Linear takes 4-bit groups")
        self.out_features, self.in_features = groups.shape
        # The kernel packs rows 16 at a time: pad with zero rows, cut the outputs back.
        pad = -self.out_features % 16
        q, scale, zero = groups.q, groups.scale, groups.bias + 8 * groups.scale
        if pad:
            q = torch.cat([q, q.new_full((pad, q.shape[1]), 8)])
            scale = torch.cat([scale, scale.new_zeros(pad, scale.shape[1])])
            zero = torch.cat([zero, zero.new_zeros(pad, zero.shape[1])])
        self.padded = self.out_features + pad
        packed = torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 1)
        # The kernel wants (cols / 32, rows, 2): the scale, and the weight where q = 8. Both
        # are bfloat16 there; a zero point rounded to bfloat16 shifts every weight of its group
        # alike (SmolLM2: P(" Jak") 0.523 instead of 0.547). So the kernel gets zero points of
        # 0 and they are added in float32: sum_g zero[n, g] * (sum of x over group g), a
        # matmul 32 times smaller than the layer's.
        # Where every zero point is exact in bfloat16 (0 for Q4_0's symmetric blocks), it is
        # folded into the kernel's own and nothing is added.
        folded = bool((zero.to(torch.bfloat16).float() == zero).all())
        kernel_zero = zero if folded else torch.zeros_like(scale)
        scale_zero = torch.stack([scale, kernel_zero], dim=-1).transpose(0, 1)
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer(
            "scale_zero", scale_zero.contiguous().to(torch.bfloat16), persistent=False
        )
        self.register_buffer(
            "zeros", None if folded else zero.t().contiguous(), persistent=False
        )  # (cols / 32, rows)
        self.bias = _bias_parameter(bias, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if flat.dtype != torch.float32:  # (checked here: a no-op .to still costs a call)
            flat = flat.float()
        y = torch._weight_int4pack_mm_for_cpu(
            flat.to(torch.bfloat16), self.packed, GROUP, self.scale_zero
        ).float()
        if self.zeros is not None:
            sums = flat.unflatten(-1, (-1, GROUP)).sum(dim=-1)  # (n, cols / 32)
            y = torch.addmm(y, sums, self.zeros)
        if x.dtype != torch.float32:
            y = y.to(x.dtype)
        if self.padded != self.out_features:
            y = y[:, : self.out_features]
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    @property
    def weight_count(self) -> int:
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, int4 groups of {GROUP}"


class Int8Linear(Int4Linear):
    """y = x W^T + b with W as 8-bit groups of 32, exactly, as two 4-bit planes (module notes).

    The int4 kernel computes x' W'^T for x' = [x, x] and W' = [16 s high | s low]; the
    constant part of each group (8 s, with q + 128 = 16 high + low) is a float32 zero point."""

    def __init__(self, groups: Groups, bias: torch.Tensor | None = None) -> None:
        super().__init__(groups.planes(), bias)
        self.in_features = groups.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([x, x], dim=-1))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, int8 groups of {GROUP} (two planes)"


_KEEP_SOURCES = False


@contextlib.contextmanager
def keeping_sources() -> Iterator[None]:
    """Fp16Linear layers made meanwhile keep their float16 weights as `source` (fbgemm's
    packed form cannot be written out; tokenscope.lm.formats.packed_cache writes these)."""
    global _KEEP_SOURCES
    saved, _KEEP_SOURCES = _KEEP_SOURCES, True
    try:
        yield
    finally:
        _KEEP_SOURCES = saved


class Fp16Linear(nn.Module):
    """y = x W^T + b with W in float16, packed for fbgemm (float32 in, float32 out)."""

    packed: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.source = weight.to(torch.float16) if _KEEP_SOURCES else None
        with _quiet_stderr():
            packed = torch.ops._quantized.wrapped_fbgemm_pack_gemm_matrix_fp16(
                weight.float().contiguous()
            )
        self.register_buffer("packed", packed, persistent=False)
        self.bias = _bias_parameter(bias, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).float()
        y = torch.ops._quantized.wrapped_fbgemm_linear_fp16_weight(
            flat, self.packed, self.bias, self.out_features
        )
        return y.to(x.dtype).view(*shape[:-1], self.out_features)

    @property
    def weight_count(self) -> int:
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, float16 (fbgemm)"


class HalfLinear(nn.Module):
    """y = x W^T + b with W (out, in) in a half type, computed in that type."""

    weight: torch.Tensor

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.to(dtype).contiguous(), persistent=False)
        self.bias = _bias_parameter(bias, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.to(self.weight.dtype), self.weight).to(x.dtype)
        return y if self.bias is None else y + self.bias

    @property
    def weight_count(self) -> int:
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        kind = str(self.weight.dtype).removeprefix("torch.")
        return f"{self.in_features} -> {self.out_features}, {kind} (out, in)"


class SlicedHead(nn.Module):
    """An output head made of row slices (see HEAD_SLICE_ROWS); logits are their concatenation."""

    def __init__(self, parts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        sizes = [(int(getattr(p, "in_features")), int(getattr(p, "out_features"))) for p in parts]  # noqa: B009
        self.in_features = sizes[0][0]
        self.out_features = sum(n for _, n in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.parts) == 1:
            return self.parts[0](x)
        return torch.cat([p(x) for p in self.parts], dim=-1)

    @property
    def weight_count(self) -> int:
        return self.in_features * self.out_features


class ColumnSplit(nn.Module):
    """x W^T with W's columns in two layers: fbgemm float16 over the first multiple of 512
    inputs (where its packing is compact) and bfloat16 over the rest. SmolLM2's 576-input
    head: 55 MB and 1.9 ms a token, against 96 MB for fbgemm padding all 576 to 1024."""

    def __init__(
        self, first: nn.Module, rest: nn.Module, split: int, bias: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.first, self.rest, self.split = first, rest, split
        self.in_features: int = split + int(getattr(rest, "in_features"))  # noqa: B009
        self.out_features: int = int(getattr(first, "out_features"))  # noqa: B009
        self.bias = _bias_parameter(bias, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x[..., : self.split]) + self.rest(x[..., self.split :])
        return y if self.bias is None else y + self.bias

    @property
    def weight_count(self) -> int:
        return self.in_features * self.out_features


def fp16_layer(w: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """fbgemm float16 for a (out, in) matrix, split by columns where padding would waste."""
    cols = w.shape[1]
    if fp16_fits(cols) or cols < 512:
        return Fp16Linear(w, bias)
    split = cols // 512 * 512
    rest = HalfLinear(w[:, split:], dtype=torch.bfloat16)
    return ColumnSplit(Fp16Linear(w[:, :split].contiguous()), rest, split, bias)


class GroupEmbedding(nn.Module):
    """Token embedding rows kept as groups (8- or 4-bit), decoded to float32 on lookup."""

    q: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, groups: Groups) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = groups.shape
        self.register_buffer("q", groups.q, persistent=False)
        self.register_buffer("scale", groups.scale, persistent=False)
        self.register_buffer("bias", groups.bias, persistent=False)
        self.bits = groups.bits

    @property
    def groups(self) -> Groups:
        return Groups(self.q, self.scale, self.bias, self.bits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = self.embedding_dim // GROUP
        q = self.q[ids].float().unflatten(-1, (n, GROUP))
        rows = q * self.scale[ids][..., None] + self.bias[ids][..., None]
        return rows.flatten(-2)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows start..stop-1 in float32 (to pack a tied output head slice by slice)."""
        index = torch.arange(start, stop, device=self.q.device)
        return self(index)

    @property
    def weight_count(self) -> int:
        return self.num_embeddings * self.embedding_dim


class HalfEmbedding(nn.Module):
    """Token embedding rows kept in float16, returned as float32."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("weight", weight.to(torch.float16).contiguous(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return self.weight[start:stop].float()

    @property
    def weight_count(self) -> int:
        return self.num_embeddings * self.embedding_dim


PACKED_TYPES = (
    Int4Linear,
    Fp16Linear,
    HalfLinear,
    SlicedHead,
    ColumnSplit,
    GroupEmbedding,
    HalfEmbedding,
)
# (Int8Linear is an Int4Linear.)


@runtime_checkable
class _CountsWeights(Protocol):
    """A layer holding its weights as buffers (the types above, formats.int8.Int8Dense)."""

    @property
    def weight_count(self) -> int: ...


def _bias_parameter(bias: torch.Tensor | None, n: int) -> nn.Parameter | None:
    if bias is None:
        return None
    if bias.shape != (n,):
        raise ValueError(f"a bias of shape {tuple(bias.shape)} for {n} outputs")
    return nn.Parameter(bias.detach().float().clone(), requires_grad=False)


def packed_weight_count(transformer: Transformer) -> int:
    """Weights held by packed layers (buffers, not parameters); a tied head's copy of the
    embedding counted once, as in ModelConfig.parameter_count."""
    tied_copy = transformer.output_layer if transformer.config.tie_embeddings else None
    skip = set() if tied_copy is None else {id(m) for m in tied_copy.modules()}
    return sum(
        m.weight_count
        for m in transformer.modules()
        if isinstance(m, _CountsWeights)
        and not isinstance(m, (SlicedHead, ColumnSplit))
        and id(m) not in skip
    )


def is_packed(module: nn.Module) -> bool:
    return any(isinstance(m, PACKED_TYPES) for m in module.modules())


def fp16_fits(in_features: int) -> bool:
    """Whether fbgemm's fp16 packing stays compact for this input size.

    It pads the input dimension to a multiple of 512: measured 1.00x the float16 bytes for
    512, 1024 and 1536 inputs, 1.07x for 960, but 1.78x for SmolLM2's 576. Where the padding
    would cost more than 1/8, a bfloat16 F.linear layer is used instead (2 bytes a weight,
    somewhat slower)."""
    padded = -(-in_features // 512) * 512
    return padded * 8 <= in_features * 9


def half_or_fp16(w: torch.Tensor, fp16: bool, bias: torch.Tensor | None = None) -> nn.Module:
    """Fp16Linear where it is available and compact, else bfloat16 HalfLinear.

    (Not split by columns as a head is: for Gemma 3's 640-wide Q5_0 matrices that decoded 6%
    faster but prefilled 512 tokens 24% slower than bfloat16, which a CPU with bfloat16
    instructions multiplies fast for many rows; a head sees one row.)"""
    if fp16 and fp16_fits(w.shape[1]):
        return Fp16Linear(w, bias)
    return HalfLinear(w, bias, dtype=torch.bfloat16)


def head_from_rows(
    rows: Callable[[int, int], torch.Tensor], vocab: int, fp16: bool, *, int4: bool = False
) -> nn.Module:
    """An output head (vocab outputs) from `rows(start, stop)` -> float32 (n, C) slices:
    float16 (fbgemm's speed is worth its padding for a matrix read in full every token), or
    with `int4` rounded to 4-bit groups (the int4 weight mode: the smallest, not exact)."""
    parts: list[nn.Module] = []
    for start in range(0, vocab, HEAD_SLICE_ROWS):
        w = rows(start, min(vocab, start + HEAD_SLICE_ROWS))
        if int4 and w.shape[1] % GROUP == 0:
            parts.append(Int4Linear(Groups.quantize4(w)))
        else:
            parts.append(fp16_layer(w) if fp16 else HalfLinear(w, dtype=torch.bfloat16))
        del w
        trim()
    return SlicedHead(parts)


def head_from_groups(groups: Groups) -> nn.Module:
    """An output head from group-quantized rows, exactly: 4-bit groups as Int4Linear, 8-bit
    ones as Int8Linear (the int4 kernel must be available), in slices of HEAD_SLICE_ROWS."""
    kind = Int8Linear if groups.bits == 8 else Int4Linear
    rows = groups.shape[0]
    parts: list[nn.Module] = []
    for start in range(0, rows, HEAD_SLICE_ROWS):
        parts.append(kind(groups.rows(start, min(rows, start + HEAD_SLICE_ROWS))))
        trim()
    return SlicedHead(parts)


def _dense_layers(transformer: Transformer) -> Iterator[tuple[nn.Module, str, Dense]]:
    from tokenscope.lm.model import Dense

    for block in transformer.blocks:
        block = cast("Block", block)  # nn.ModuleList yields plain Modules to a type checker
        for parent in (block.attn, block.mlp) if block.mlp is not None else (block.attn,):
            for name, child in list(parent.named_children()):
                if isinstance(child, Dense):
                    yield parent, name, child


def half_layout(transformer: Transformer) -> None:
    """For a model already converted to a half type: every matrix as HalfLinear (out, in).

    Dense keeps (in, out) for float32 speed; in bfloat16 that layout multiplies ~10x slower
    on the CPU than F.linear's (out, in). The tied head gets its own (out, in) layer over the
    embedding's storage (no copy)."""
    dtype = transformer.compute_dtype
    for parent, name, dense in _dense_layers(transformer):
        setattr(parent, name, HalfLinear(dense.weight.detach().t(), dense.bias, dtype=dtype))
        if dense.bias is not None:
            getattr(parent, name).bias.data = dense.bias.detach().to(dtype)
    if transformer.head is not None:
        w = transformer.head.weight.detach().t()
    else:
        w = transformer.embed.weight.detach()
    transformer.set_output_layer(HalfLinear(w, dtype=dtype))


def quantize_int4(transformer: Transformer, device: str = "cpu") -> None:
    """A loaded float model's block matrices and its head as 4-bit groups (rounded).

    Matrices whose input size is not a multiple of 32 stay as they are."""
    if device != "cpu" or not int4_available():
        raise ValueError(
            "int4 needs PyTorch's CPU int4 kernel (_weight_int4pack_mm_for_cpu); this "
            f"PyTorch or device ({device}) has none: use bfloat16 instead"
        )
    for parent, name, dense in _dense_layers(transformer):
        w = dense.weight.detach().t()  # (out, in)
        if w.shape[1] % GROUP:
            continue
        setattr(parent, name, Int4Linear(Groups.quantize4(w), dense.bias))
    if transformer.head is not None:
        w = transformer.head.weight.detach()
        rows = lambda a, b: w[:, a:b].t().float()  # noqa: E731
    else:
        e = transformer.embed.weight.detach()
        rows = lambda a, b: e[a:b].float()  # noqa: E731
    transformer.set_output_layer(
        head_from_rows(rows, transformer.config.vocab_size, fp16_available(), int4=True)
    )
