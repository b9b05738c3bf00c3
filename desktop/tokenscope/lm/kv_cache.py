"""Key/value cache for incremental decoding.

Keys and values of past positions are kept so that each new token costs one position of
attention work instead of re-running the whole prefix. The cache can be cut back to a prefix,
which is how the playground reuses work when only the end of the prompt changes.
"""

from __future__ import annotations

import torch


def power_of_two(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, n - 1).bit_length()


class KVCache:
    """Keys and values for every layer: (n_layer, B, n_kv_head, capacity, head_dim).

    It starts small and doubles when full, up to `max_capacity` (the context length), so a
    short prompt on a model with an 8192-token window does not hold memory for 8192 positions.
    """

    def __init__(
        self,
        n_layer: int,
        n_kv_head: int,
        head_dim: int,
        capacity: int,
        *,
        max_capacity: int | None = None,
        batch_size: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.max_capacity = max(capacity, max_capacity or capacity)
        shape = (n_layer, batch_size, n_kv_head, capacity, head_dim)
        # Never inference tensors, wherever the cache is made or grown: a compiled decode
        # step (lm.compiled) is specialised on that, and would be compiled twice.
        with torch.inference_mode(False):
            self.keys = torch.zeros(shape, dtype=dtype, device=device)
            self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.capacity = capacity
        self.length = 0  # positions filled and committed
        self._pending = 0  # positions being written by the forward pass in progress

    def _grow(self, needed: int) -> None:
        # Powers of two: a compiled decode step is built once per capacity (lm.compiled).
        capacity = min(self.max_capacity, power_of_two(max(needed, 2 * self.capacity)))
        for name in ("keys", "values"):
            old = getattr(self, name)
            with torch.inference_mode(False):
                new = old.new_zeros((*old.shape[:3], capacity, old.shape[4]))
            new[:, :, :, : self.capacity] = old  # allowed in inference mode too
            setattr(self, name, new)
        self.capacity = capacity

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values (B, n_kv, T, hs); return all of them so far."""
        t = k.shape[2]
        end = self.length + t
        if end > self.capacity and layer == 0 and end <= self.max_capacity:
            self._grow(end)
        if end > self.capacity:
            raise ValueError(
                f"KV cache overflow: {self.length} cached + {t} new > capacity {self.capacity}"
            )
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        self._pending = t
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def reserve(self, needed: int) -> None:
        """Make room for `needed` positions now (a power of two, at most max_capacity)."""
        if needed > self.max_capacity:
            raise ValueError(f"{needed} positions exceed the cache's limit {self.max_capacity}")
        if needed > self.capacity:
            self._grow(needed)

    def commit(self) -> None:
        """Called once per forward pass, after every layer has written its new positions."""
        self.length += self._pending
        self._pending = 0

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on (keep the prefix)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length
        self._pending = 0

    def reset(self) -> None:
        self.truncate(0)
