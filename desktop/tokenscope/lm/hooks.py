"""Named hook points inside the Transformer: read or change activations from outside.

Every block has five points, named with one grammar (`blocks.{layer}.{point}`):

    blocks.3.resid_pre       (B, T, C)      the residual stream entering block 3
    blocks.3.attn.pattern    (B, nh, T, S)  attention weights (rows sum to 1), float32
    blocks.3.attn.head_out   (B, nh, T, hs) each head's output, before the output projection
    blocks.3.mlp_out         (B, T, C)      what the MLP adds to the residual stream
    blocks.3.resid_post      (B, T, C)      the residual stream leaving block 3

A hook is `fn(activation, name)`; it returns None to leave the activation alone (reading
it) or a tensor of the same shape to use instead (ablation, steering, patching):

    with hooks(model.transformer, {"blocks.1.attn.pattern": keep}):   # for one forward
        model.transformer(ids)
    cache = run_with_cache(model.transformer, ids, ["blocks.0.resid_pre"])
    handle = add_hook(model.transformer, "blocks.5.resid_post", lambda x, _: x + vector)
    handle.remove()                                                    # steering, undone

The model's `forward` knows nothing of who listens: each point is an identity unless a hook
is attached. Asking for `attn.pattern` makes that layer compute its attention explicitly
(softmax(q k^T) v) instead of through the fused kernel, which never materialises weights;
any attached hook turns the compiled decode step off (it knows none of them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

import torch

if TYPE_CHECKING:
    from tokenscope.lm.model import Block, Transformer

#: fn(activation, hook point name) -> a replacement, or None to keep the activation
HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]

#: the points of one block, in the order the forward pass reaches them
BLOCK_POINTS = ("resid_pre", "attn.pattern", "attn.head_out", "mlp_out", "resid_post")


class HookPoint:
    """An identity on the forward path that hooks can read or replace.

    Not an nn.Module on purpose: it holds no weights, must not appear in checkpoints, and
    costs one attribute test per call when nothing listens (decoding passes 150 of them per
    SmolLM2 token).
    """

    __slots__ = ("_fns", "name")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._fns: list[HookFn] = []

    @property
    def active(self) -> bool:
        return bool(self._fns)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fns:
            return x
        for fn in tuple(self._fns):
            out = fn(x, self.name)
            if out is not None:
                if out.shape != x.shape:
                    raise ValueError(
                        f"a hook on {self.name} returned shape {tuple(out.shape)} for an "
                        f"activation of shape {tuple(x.shape)}"
                    )
                x = out
        return x

    def add(self, fn: HookFn) -> HookHandle:
        self._fns.append(fn)
        return HookHandle(self, fn)

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r}, {len(self._fns)} hooks)"


class HookHandle:
    """What `add_hook` returns: `remove()` detaches the hook (safe to call twice)."""

    __slots__ = ("fn", "point")

    def __init__(self, point: HookPoint, fn: HookFn) -> None:
        self.point, self.fn = point, fn

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            self.point._fns.remove(self.fn)


def hook_points(transformer: Transformer) -> dict[str, HookPoint]:
    """Every hook point of the model by name, in forward order."""
    # nn.ModuleList yields plain Modules to a type checker; these are Blocks.
    return {p.name: p for b in transformer.blocks for p in cast("Block", b).hook_points()}


def hook_point(transformer: Transformer, name: str) -> HookPoint:
    """The hook point called `name`; ValueError naming the points there are if none is."""
    return _point(transformer, name)


def _point(transformer: Transformer, name: str) -> HookPoint:
    points = hook_points(transformer)
    if name not in points:
        layers = len(transformer.blocks)
        raise ValueError(
            f"no hook point {name!r}: the model has blocks.0 to blocks.{layers - 1}, each with "
            f"{', '.join(BLOCK_POINTS)}"
        )
    return points[name]


def add_hook(transformer: Transformer, name: str, fn: HookFn) -> HookHandle:
    """Attach `fn` at hook point `name` until its handle is removed."""
    return _point(transformer, name).add(fn)


def is_hooked(transformer: Transformer) -> bool:
    """Whether any hook is attached (the compiled decode step must then stand aside)."""
    return any(p.active for b in transformer.blocks for p in cast("Block", b).hook_points())


@contextlib.contextmanager
def hooks(
    transformer: Transformer, fns: Mapping[str, HookFn] | Iterable[tuple[str, HookFn]]
) -> Iterator[None]:
    """Attach hooks for the duration of the block; they come off whatever happens inside."""
    items = fns.items() if isinstance(fns, Mapping) else fns
    handles = []
    try:
        for name, fn in items:
            handles.append(add_hook(transformer, name, fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_with_cache(
    transformer: Transformer, ids: torch.Tensor, names: Iterable[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(logits, {name: activation}) from one forward pass of `ids` (B, T), recording the
    named points (detached, as the forward pass saw them after any other hook)."""
    cache: dict[str, torch.Tensor] = {}

    def record(x: torch.Tensor, name: str) -> None:
        cache[name] = x.detach()

    with hooks(transformer, [(name, record) for name in names]):
        logits = transformer(ids)
    return logits, cache
