"""An opt-in compiled decode step: one token through the whole model as one inductor graph.

Eager PyTorch spends ~6-13 ms per SmolLM2 token outside the matmuls (about 5,600 small
operator calls: norms, rotary, cache writes, type conversions), as much as llama.cpp's whole
token. `torch.compile` fuses them into a few C++ loops. Shapes are fixed but one: the KV
cache has a capacity (a power of two, 256, 512, ... up to the context length, see KVCache)
that is symbolic in the graph, so one compile serves every capacity, and attention reads the
cache's current capacity under a mask, never a full-context one. The new position is a
tensor, so the step is not compiled again for each token.

Compiling takes minutes the first time on a small CPU; inductor keeps what it built in a
disk cache (tokenscope's cache folder, see `cache_dir`), after which warming takes seconds.
Prefill (several new tokens) stays eager: it is one call per prompt, not per token.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F

from tokenscope.lm.kv_cache import KVCache

if TYPE_CHECKING:
    from tokenscope.lm.model import Block, Transformer

FIRST_BUCKET = 256


def _has_guard_skipping() -> bool:
    """torch.compiler.set_stance(skip_guard_eval_unsafe=...) arrived in torch 2.7."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    try:
        return set_stance is not None and (
            "skip_guard_eval_unsafe" in inspect.signature(set_stance).parameters
        )
    except (TypeError, ValueError):
        return False


_STANCE = _has_guard_skipping()


def use_disk_cache() -> None:
    """Inductor keeps compiled code between runs in Tokenscope's cache folder
    (TORCHINDUCTOR_CACHE_DIR wins)."""
    from tokenscope.paths import inductor_cache_dir

    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        path = inductor_cache_dir()
        path.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


# `t` is the Transformer, left untyped: nn.Module's types give every submodule as
# `Tensor | Module`, so a typed `t` would take a cast on each line of this traced graph.
def _step(  # type: ignore[no-untyped-def]
    t,
    ids: torch.Tensor,
    pos: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    head: torch.Tensor | None,
) -> torch.Tensor:
    """Logits (1, 1, V) for one new token `ids` (1, 1) at position `pos` (1,); writes its
    keys and values into the caches (n_layer, 1, nkv, capacity, hs) in place."""
    c = t.config
    x = t.embed(ids).to(t.compute_dtype)  # (1, 1, C)
    if t.pos_embed is not None:
        x = x + t.pos_embed.weight.index_select(0, pos)[None]
    capacity = keys.shape[3]
    mask = (torch.arange(capacity, device=pos.device) <= pos)[None, None, None, :]
    if cos is not None and sin is not None:  # both or neither
        cos_p, sin_p = cos.index_select(0, pos), sin.index_select(0, pos)  # (1, hs)
    q_size, kv_size = c.n_head * c.head_dim, c.kv_heads * c.head_dim
    heads = torch.arange(c.kv_heads, device=pos.device).view(1, -1)
    zero = torch.zeros(1, 1, dtype=torch.long, device=pos.device)
    layer_index = [torch.full((1, 1), i, device=pos.device) for i in range(c.n_layer)]
    for i, block in enumerate(t.blocks):
        attn = block.attn
        qk, v = attn.qkv(block.attn_norm(x)).split([q_size + kv_size, kv_size], dim=-1)
        qk = qk.view(1, 1, c.n_head + c.kv_heads, c.head_dim).transpose(1, 2)
        if cos is not None:
            qk = _rotate(qk, cos_p, sin_p)
        q, k = qk.split([c.n_head, c.kv_heads], dim=1)
        v = v.view(1, 1, c.kv_heads, c.head_dim).transpose(1, 2)
        # index_put_ on the whole cache tensor, not a copy into a view of it: inductor then
        # writes the new position in place (a view's copy became a copy of the whole cache
        # for every layer: 40 ms a token on SmolLM2).
        where = (layer_index[i], zero, heads, pos.view(1, 1))
        keys.index_put_(where, k.reshape(1, c.kv_heads, c.head_dim))
        values.index_put_(where, v.reshape(1, c.kv_heads, c.head_dim))
        y = F.scaled_dot_product_attention(
            q, keys[i], values[i], attn_mask=mask, enable_gqa=c.kv_heads != c.n_head
        )
        x = x + attn.out(y.transpose(1, 2).reshape(1, 1, c.d_model))
        if block.mlp is not None:  # (None: an attention-only block)
            x = x + block.mlp(block.mlp_norm(x))
    x = t.final_norm(x)
    if head is None:
        return t.output_layer(x)
    return x @ head


class CompiledDecoder:
    """The compiled one-token step of a Transformer (see the module notes)."""

    def __init__(self, transformer: Transformer) -> None:
        if not transformer.config.classic:
            raise ValueError(
                "compiled decoding covers GPT-2 and Llama-style blocks; this model's "
                "(QK-norm, sliding windows, extra norms, ...) decode in eager mode"
            )
        use_disk_cache()
        # One model is compiled at a time: forget the graphs of earlier ones (torch keeps at
        # most 8 per function and then refuses to compile another).
        torch.compiler.reset()
        self.transformer = transformer
        first = cast("Block", transformer.blocks[0]) if len(transformer.blocks) else None
        rotary = first.attn.rotary if first is not None else None
        self._rotary = rotary
        self._fn = torch.compile(_step, fullgraph=True)
        self.buckets_ready: set[int] = set()

    def _tables(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self._rotary is None:
            return None, None
        return self._rotary.tables(device, dtype)

    def step(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (1, 1, V) for one new token; the cache grows by one position."""
        if cache.length + 1 > cache.capacity:
            cache.reserve(cache.length + 1)
        t = self.transformer
        pos = torch.tensor([cache.length], device=cache.keys.device)
        cos, sin = self._tables(cache.keys.device, t.compute_dtype)
        head = None if t.output_layer is not None else t._output_matrix()
        args = (t, ids, pos, cache.keys, cache.values, cos, sin, head)
        if not self.buckets_ready:
            # One graph for every capacity: the cache's length dimension stays symbolic, so
            # a cache that grows mid-generation does not stop it for another compile.
            torch._dynamo.mark_dynamic(cache.keys, 3)
            torch._dynamo.mark_dynamic(cache.values, 3)
        logits = None
        if self.buckets_ready and _STANCE:
            # Checking every guard (one per weight tensor) cost ~1.3 ms a token; once the step
            # is compiled, only the guards that tell compiled graphs apart run. Should an input
            # differ in a way they miss, torch refuses, and the step runs with every guard.
            try:
                with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                    logits = self._fn(*args)
            except RuntimeError as e:
                if "skip_guard_eval_unsafe" not in str(e):
                    raise
        if logits is None:
            logits = self._fn(*args)
        cache.length += 1
        self.buckets_ready.add(cache.capacity)
        return logits

    def warm(
        self,
        buckets: tuple[int, ...] = (FIRST_BUCKET,),
        progress: Callable[[str, int, int], None] | None = None,
    ) -> float:
        """Compile (or load from the disk cache) the step for these cache capacities; returns
        the seconds it took. `progress(stage, done, total)` is called per bucket."""
        t = self.transformer
        started = time.perf_counter()
        wanted = [min(b, t.config.context_length) for b in buckets]
        for n, capacity in enumerate(wanted):
            if progress is not None:
                progress(f"compiling the decode step for {capacity} positions", n, len(wanted))
            cache = t.new_cache(capacity)
            cache.reserve(capacity)
            with torch.inference_mode():
                self.step(torch.zeros(1, 1, dtype=torch.long, device=t.device), cache)
        if progress is not None:
            progress("compiled", len(wanted), len(wanted))
        return time.perf_counter() - started
