"""Which GGUF matrices stay small in memory, and as what (see tokenscope.lm.packed).

A plan is made per matrix from the tensor types the file stores, one matrix at a time, so
the float32 model is never materialised:

    mode "auto" (the default for GGUF files), on the CPU:
        4-bit blocks (Q4_0, Q4_1, Q4_K)        -> Int4Linear, repacked exactly
        other blocks and float16 (Q5_*, Q6_K, Q8_0, F16, BF16, ...) -> Fp16Linear
        float32 matrices                       -> left to the float32 path (as before)
        the output head (or the tied embedding) as the file stores it: Q8_0 -> Int8Linear,
            4-bit -> Int4Linear (both exact, as llama.cpp reads it), else Fp16Linear slices
        the token embedding                    -> GroupEmbedding for Q8_0 and 4-bit rows
    mode "int4": as auto, but every block matrix and the head are 4-bit (re-quantized where
        the file holds more bits) and float32 matrices are packed too;
    on a CUDA device (or a torch without the CPU kernels): HalfLinear in bfloat16.

Where a matrix is made of several file tensors (q, k, v into qkv), they are packed together
only if all are 4-bit; otherwise the whole matrix is float16.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

import torch
from gguf import GGMLQuantizationType as Q
from torch import nn

from tokenscope.lm.config import ModelConfig
from tokenscope.lm.formats.dequantize import FOUR_BIT, GROUP_TYPES, dequantize, groups
from tokenscope.lm.formats.gguf_file import GGUFFile
from tokenscope.lm.heap import trim
from tokenscope.lm.hf_names import wanted
from tokenscope.lm.packed import (
    GROUP,
    ColumnSplit,
    Fp16Linear,
    GroupEmbedding,
    Groups,
    HalfEmbedding,
    HalfLinear,
    Int4Linear,
    Int8Linear,
    SlicedHead,
    fp16_available,
    half_or_fp16,
    head_from_groups,
    head_from_rows,
    int4_available,
)
from tokenscope.lm.progress import report

if TYPE_CHECKING:
    from tokenscope.lm.model import Transformer

PACKING_MODES = ("auto", "int4")
_BLOCK_MATRICES = ("attn.qkv", "attn.out", "mlp.gate_up", "mlp.up", "mlp.down")


class _Source:
    """One file tensor, read as Groups (group types) or float32, rows in Hugging Face order."""

    def __init__(self, gf: GGUFFile, config: ModelConfig, rows_permuted: bool) -> None:
        self.gf, self.config, self.rows_permuted = gf, config, rows_permuted

    def qtype(self, name: str) -> Q:
        return self.gf.tensors[name].qtype

    def _row_order(self, name: str, rows: int) -> torch.Tensor | None:
        if not (self.rows_permuted and name.endswith(("attn_q.weight", "attn_k.weight"))):
            return None
        heads = self.config.n_head if "attn_q" in name else self.config.kv_heads
        # GGUF row h*hs + 2i + j is Hugging Face row h*hs + j*hs/2 + i.
        return torch.arange(rows).view(heads, -1, 2).transpose(1, 2).reshape(rows)

    def groups(self, name: str) -> Groups:
        info = self.gf.tensors[name]
        g = groups(self.gf.tensor_bytes(info), info.qtype, info.shape, name)
        self.gf.release(info)
        order = self._row_order(name, info.shape[0])
        return g if order is None else g.take_rows(order)

    def floats(self, name: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        info = self.gf.tensors[name]
        raw = self.gf.tensor_bytes(info)
        rows = info.shape[0]
        stop = rows if stop is None else stop
        if (start, stop) != (0, rows):  # a slice of rows: only those bytes are decoded
            w = dequantize(raw[start:stop], info.qtype, (stop - start, info.shape[1]), name)
            return w
        w = dequantize(raw, info.qtype, info.shape, name)
        self.gf.release(info)
        order = self._row_order(name, rows)
        return w if order is None else w[order]


def _kinds(device: str) -> tuple[bool, bool]:
    """(int4 usable, fbgemm fp16 usable) for weights on `device`."""
    if device != "cpu":
        return False, False
    return int4_available(), fp16_available()


def pack_gguf(
    gf: GGUFFile,
    config: ModelConfig,
    spec: dict[str, Any],
    transformer: Transformer,
    targets: set[str],
    mode: str,
    device: str,
) -> tuple[set[str], str | None]:
    """Put packed layers into `transformer` (still on the meta device) for the matrices the
    plan keeps small. Returns the state-dict names now filled (the caller loads the rest)
    and a label of what was done, e.g. "int4 g32 + fp16", or None if nothing was packed."""
    if mode not in PACKING_MODES:
        raise ValueError(f"unknown packing mode {mode!r}")
    int4_ok, fp16_ok = _kinds(device)
    if mode == "int4" and not int4_ok:
        raise ValueError(
            f"int4 needs PyTorch's CPU int4 kernel (_weight_int4pack_mm_for_cpu); this "
            f"PyTorch or device ({device}) has none: use auto or bfloat16 instead"
        )
    source = _Source(gf, config, spec["rows_permuted"])
    candidates = {
        n
        for n in targets
        if n in ("embed.weight", "head.weight")
        or (n.startswith("blocks.") and n.endswith(tuple(f"{m}.weight" for m in _BLOCK_MATRICES)))
    }
    plan = list(wanted(spec["rules"], config, candidates, gf.tensors))
    done: set[str] = set()
    used: set[str] = set()
    total = len(plan) + (1 if config.tie_embeddings else 0)
    for index, (name, names, op) in enumerate(plan):
        report("packing the weights", index, total)
        if op not in ("t", "cat_t", "copy"):
            continue
        types = [source.qtype(s) for s in names]
        module: nn.Module | None
        if name == "embed.weight":
            module = _embedding(source, names[0], types[0], mode)
        elif name == "head.weight":
            if mode == "auto" and types[0] == Q.F32:  # float32 as before
                module = None
            elif (
                int4_ok and types[0] in GROUP_TYPES and not (mode == "int4" and types[0] == Q.Q8_0)
            ):
                module = head_from_groups(source.groups(names[0]))
            else:
                rows = functools.partial(source.floats, names[0])
                module = head_from_rows(rows, config.vocab_size, fp16_ok, int4=mode == "int4")
        else:
            module = _block_matrix(source, names, types, mode, int4_ok, fp16_ok)
        if module is None:
            continue
        install(transformer, name, module)
        trim()  # the float32 temporaries of this matrix: give them back before the next
        done.add(name)
        used.add(_kind(module))
    if config.tie_embeddings and "embed.weight" in done:
        report("packing the weights", total - 1, total)
        embed = transformer.embed
        assert isinstance(embed, (GroupEmbedding, HalfEmbedding))  # packed above
        if (
            int4_ok
            and isinstance(embed, GroupEmbedding)
            and not (mode == "int4" and embed.bits == 8)
        ):
            head = head_from_groups(embed.groups)
        else:
            head = head_from_rows(embed.rows, config.vocab_size, fp16_ok, int4=mode == "int4")
        transformer.set_output_layer(head)
        used.add(_kind(head))
    if not done:
        return set(), None
    order = [f"int4 g{GROUP}", "int8 g32", "fp16", "bf16", "int8 head", "int4 head",
             "fp16 head", "bf16 head", "grouped embedding", "fp16 embedding"]  # fmt: skip
    return done, " + ".join(k for k in order if k in used)


def finish_tied_head(transformer: Transformer, device: str) -> None:
    """A tied float32 embedding's head as float16 slices, once the state dict is loaded
    (instead of the float32 transposed copy the plain path keeps)."""
    if transformer.config.tie_embeddings and transformer.output_layer is None:
        e = transformer.embed.weight
        rows = lambda a, b: e[a:b].detach().float()  # noqa: E731
        transformer.set_output_layer(
            head_from_rows(rows, transformer.config.vocab_size, _kinds(device)[1])
        )


def _kind(module: nn.Module) -> str:
    if isinstance(module, Int8Linear):
        return "int8 g32"
    if isinstance(module, Int4Linear):
        return f"int4 g{GROUP}"
    if isinstance(module, (Fp16Linear, ColumnSplit)):
        return "fp16"
    if isinstance(module, HalfLinear):
        return "bf16"
    if isinstance(module, GroupEmbedding):
        return "grouped embedding"
    if isinstance(module, HalfEmbedding):
        return "fp16 embedding"
    head = cast(SlicedHead, module)  # what is left: a packed output head
    part = head.parts[0]
    if isinstance(part, ColumnSplit):
        part = part.first
    if isinstance(part, Int8Linear):
        return "int8 head"
    if isinstance(part, Int4Linear):
        return "int4 head"
    return "fp16 head" if isinstance(part, Fp16Linear) else "bf16 head"


def _embedding(source: _Source, name: str, qtype: Q, mode: str) -> nn.Module | None:
    if qtype in GROUP_TYPES:
        return GroupEmbedding(source.groups(name))
    if qtype == Q.F32 and mode == "auto":
        return None  # float32 as before
    return HalfEmbedding(source.floats(name))


def _block_matrix(
    source: _Source, names: list[str], types: list[Q], mode: str, int4_ok: bool, fp16_ok: bool
) -> nn.Module | None:
    four_bit = all(t in FOUR_BIT for t in types)
    if mode == "auto" and all(t == Q.F32 for t in types):
        return None
    if int4_ok and four_bit:
        return Int4Linear(Groups.cat([source.groups(n) for n in names]))
    w = torch.cat([source.floats(n) for n in names]) if len(names) > 1 else source.floats(names[0])
    if mode == "int4" and w.shape[1] % GROUP == 0:
        return Int4Linear(Groups.quantize4(w))
    return half_or_fp16(w, fp16_ok)


def install(transformer: Transformer, name: str, module: nn.Module) -> None:
    """Replace the layer owning `name` (e.g. blocks.3.attn.qkv.weight) with `module`; a bias
    the old layer had stays a (meta) parameter for the state dict to fill."""
    path = name.removesuffix(".weight")
    parent_path, _, child = path.rpartition(".")
    parent = transformer.get_submodule(parent_path) if parent_path else transformer
    old = getattr(parent, child)
    bias = getattr(old, "bias", None)
    if isinstance(bias, nn.Parameter) and not isinstance(module, (GroupEmbedding, HalfEmbedding)):
        module.bias = nn.Parameter(torch.empty_like(bias), requires_grad=False)
    if child == "head":  # "head.weight": the parent is the model itself
        transformer.set_output_layer(module)
        return
    setattr(parent, child, module)
