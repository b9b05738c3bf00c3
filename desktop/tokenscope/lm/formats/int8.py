"""Weight-only int8 for decoding on the CPU: a loaded model's block matrices as int8 rows.

Decoding one token reads every weight once, so it is bound by memory bandwidth (~15 GB/s
here): float32 SmolLM2 tops out near 28 tokens/s. Int8 weights are a quarter of the bytes;
each output row keeps one float scale (symmetric, absmax / 127). The matmul is torch's CPU
kernel `_weight_int8pack_mm`, which is fast with bfloat16 activations (and ~10x slower
with float32 ones), so activations are rounded to bfloat16 for these matmuls only.

The embedding and the output head stay as they are: the model ties its head to the
embedding, and those are read through the Transformer's own code paths.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from tokenscope.lm.model import Block, Dense, Transformer


class Int8Dense(nn.Module):
    """A Dense layer with its weight stored (out, in) as int8 plus a per-row scale."""

    qweight: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dense: Dense) -> None:
        super().__init__()
        w = dense.weight.detach().float().t().contiguous()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
        self.register_buffer("qweight", torch.round(w / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = dense.bias

    @property
    def weight_count(self) -> int:
        return self.qweight.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch._weight_int8pack_mm(
            x.reshape(-1, shape[-1]).to(torch.bfloat16), self.qweight, self.scale
        ).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], y.shape[-1])


def quantize_blocks_int8(transformer: Transformer) -> Transformer:
    """Replace every block's Dense layers with Int8Dense, in place; returns the model."""
    if not hasattr(torch, "_weight_int8pack_mm"):
        raise ValueError("this PyTorch has no int8 matmul kernel (_weight_int8pack_mm)")
    for block in transformer.blocks:
        block = cast(Block, block)  # nn.ModuleList yields plain Modules to a type checker
        for parent in (block.attn, block.mlp) if block.mlp is not None else (block.attn,):
            for name, child in list(parent.named_children()):
                if isinstance(child, Dense):
                    setattr(parent, name, Int8Dense(child))
    return transformer
