"""The one Transformer: a decoder-only language model whose variant is chosen by ModelConfig.

    GPT-2 style:  learned positions, LayerNorm, GELU MLP, biases, multi-head attention
    Llama style:  rotary positions, RMSNorm, SwiGLU MLP, grouped-query attention

Shapes: B batch, T new positions, S cached + new positions, C d_model, nh query heads,
nkv key/value heads, hs head size, V vocabulary.

Parameter names (the native checkpoint's tensor names):
    embed.weight (V, C)                      pos_embed.weight (context, C)   [learned positions]
    blocks.{i}.attn_norm.{weight,bias}       blocks.{i}.mlp_norm.{weight,bias}
    blocks.{i}.attn_post_norm.weight         blocks.{i}.mlp_post_norm.weight  [post/sandwich norms]
    blocks.{i}.attn.qkv.{weight,bias}        weight (C, (nh + 2 nkv) hs): queries, keys, values
    blocks.{i}.attn.{q,k}_norm.weight        (hs) per head, or (nh hs) / (nkv hs)   [QK-norm]
    blocks.{i}.attn.out.{weight,bias}        weight (nh hs, C)
    blocks.{i}.mlp.up.{weight,bias}          weight (C, F)         [GELU]
    blocks.{i}.mlp.gate_up.{weight,bias}     weight (C, 2F): gate, then up   [SwiGLU, GeGLU]
    blocks.{i}.mlp.down.{weight,bias}        weight (F, C)
    final_norm.{weight,bias}                 head.weight (C, V)    [untied output head]
Linear weights are stored (in, out); see Dense for why.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tokenscope.lm.config import ModelConfig
from tokenscope.lm.hooks import HookPoint
from tokenscope.lm.kv_cache import KVCache, power_of_two


class Dense(nn.Module):
    """A linear layer whose weight is stored (in_features, out_features).

    Why not nn.Linear: decoding one token is bound by reading the weights, and on CPU
    `x @ W` with W laid out (in, out) reads them up to twice as fast as nn.Linear's (out, in)
    layout (measured here: 6.8 ms vs 12.8 ms for a 768 x 50257 output head, ~20% for blocks).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return x @ self.weight
        shape = x.shape
        y = torch.addmm(self.bias, x.reshape(-1, shape[-1]), self.weight)
        return y.view(*shape[:-1], y.shape[-1])


def _norm(config: ModelConfig, width: int | None = None) -> nn.LayerNorm | nn.RMSNorm:
    width = width or config.d_model
    if config.norm == "layernorm":
        return nn.LayerNorm(width, eps=config.norm_eps)
    return nn.RMSNorm(width, eps=config.norm_eps)


class RotaryEmbedding:
    """Rotary position tables (cos, sin), built on first use for each device and dtype.

    Not a buffer: models are built on the meta device and filled from files, and derived
    tables would stay on meta. Uses the "rotate half" layout (first half pairs with second)
    over the leading `config.rotary_dim` dimensions of each head; the rest pass unrotated.
    """

    def __init__(self, config: ModelConfig, base: float | None = None) -> None:
        self.head_dim = config.rotary_dim
        self.partial = config.rotary_dim < config.head_dim
        self.base = config.rope_base if base is None else base
        self.scaling = config.rope_scaling
        self.max_positions = config.context_length
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _inverse_frequencies(self) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim
        inv_freq = 1.0 / (self.base**exponents)
        if self.scaling:
            # Llama 3: slow down low frequencies by `factor`, keep high ones, blend between.
            factor = self.scaling["factor"]
            low, high = self.scaling["low_freq_factor"], self.scaling["high_freq_factor"]
            original = self.scaling["original_context_length"]
            wavelength = 2 * math.pi / inv_freq
            smooth = (original / wavelength - low) / (high - low)
            blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
            inv_freq = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)
            middle = (wavelength <= original / low) & (wavelength >= original / high)
            inv_freq = torch.where(middle, blended, inv_freq)
        return inv_freq

    def tables(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._tables:
            positions = torch.arange(self.max_positions, dtype=torch.float64)
            angles = torch.outer(positions, self._inverse_frequencies())  # (P, rot/2)
            angles = torch.cat([angles, angles], dim=-1)  # (P, rot)
            self._tables[key] = (
                angles.cos().to(device=device, dtype=dtype),
                angles.sin().to(device=device, dtype=dtype),
            )
        return self._tables[key]

    def apply(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Rotate x (B, heads, T, hs) for positions start .. start + T - 1."""
        cos, sin = self.tables(x.device, x.dtype)
        t = x.shape[2]
        cos, sin = cos[start : start + t], sin[start : start + t]  # (T, rot)
        if self.partial:
            rot, rest = x[..., : self.head_dim], x[..., self.head_dim :]
            return torch.cat([_rotate(rot, cos, sin), rest], dim=-1)
        return _rotate(x, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    return cap * torch.tanh(x / cap)


class Attention(nn.Module):
    def __init__(
        self, config: ModelConfig, rotary: RotaryEmbedding | None, window: int | None = None
    ) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        q_size, kv_size = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        self.qkv = Dense(config.d_model, q_size + 2 * kv_size, bias=config.qkv_bias)
        self.out = Dense(q_size, config.d_model, bias=config.out_bias)
        self.qk_norm = config.qk_norm
        if config.qk_norm != "none":
            per_head = config.qk_norm == "head"
            self.q_norm = nn.RMSNorm(self.head_dim if per_head else q_size, eps=config.norm_eps)
            self.k_norm = nn.RMSNorm(self.head_dim if per_head else kv_size, eps=config.norm_eps)
        self.rotary = rotary
        self.window = window  # sliding-window layers see this many positions (itself included)
        self.scale = config.attn_scale
        self.softcap = config.attn_softcap
        self.dropout = config.dropout
        # Looking inside (tokenscope.lm.hooks): the weights, computed only when a hook asks
        # for them, and each head's output before the projection mixes the heads.
        self.hook_pattern = HookPoint()  # (B, nh, T, S)
        self.hook_head_out = HookPoint()  # (B, nh, T, hs)

    def _queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys (B, nh + nkv, T, hs), normed if the model norms them, and the
        values still flat (B, T, nkv * hs)."""
        b, t, _ = x.shape
        q_size, kv_size = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        if self.qk_norm == "none":
            qk, v = self.qkv(x).split([q_size + kv_size, kv_size], dim=-1)  # (B, T, ...)
            qk = qk.view(b, t, self.n_head + self.n_kv_head, self.head_dim)  # (B, T, nh+nkv, hs)
            return qk.transpose(1, 2), v
        q, k, v = self.qkv(x).split([q_size, kv_size, kv_size], dim=-1)  # (B, T, nh hs), ...
        if self.qk_norm == "full":  # over all heads at once (OLMo 2)
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(b, t, self.n_head, self.head_dim)  # (B, T, nh, hs)
        k = k.view(b, t, self.n_kv_head, self.head_dim)  # (B, T, nkv, hs)
        if self.qk_norm == "head":  # each head on its own (Qwen3, Gemma 3)
            q, k = self.q_norm(q), self.k_norm(k)
        return torch.cat([q, k], dim=2).transpose(1, 2), v  # (B, nh + nkv, T, hs)

    def forward(
        self, x: torch.Tensor, layer: int, start: int, cache: KVCache | None
    ) -> torch.Tensor:
        b, t, _ = x.shape
        qk, v = self._queries_keys(x)
        if self.rotary is not None:
            qk = self.rotary.apply(qk, start)  # queries and keys rotated in one go
        q, k = qk.split([self.n_head, self.n_kv_head], dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
        v = v.view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nkv, S, hs)
        s = k.shape[2]
        mask, causal = None, False
        if self.window is not None and s > 1 and (t > 1 or s > self.window):
            mask = self._mask(start, t, s, x.device)
        elif t > 1 and s == t:
            causal = True
        elif t > 1:
            mask = self._mask(start, t, s, x.device)
        if self.softcap is not None or self.hook_pattern.active:
            y = self._explicit_attention(q, k, v, mask, causal)
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=causal,
                dropout_p=self.dropout if self.training else 0.0,
                enable_gqa=self.n_kv_head != self.n_head,
                scale=self.scale,
            )  # (B, nh, T, hs)
        y = self.hook_head_out(y)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim)  # (B, T, nh hs)
        return self.out(y)

    def _mask(self, start: int, t: int, s: int, device: torch.device) -> torch.Tensor:
        """(T, S): new positions start..start+T-1 see every cached key and the new ones up to
        themselves; in a sliding-window layer only the last `window` of those."""
        key_pos = torch.arange(s, device=device)
        query_pos = torch.arange(start, start + t, device=device)
        mask = key_pos[None, :] <= query_pos[:, None]
        if self.window is not None:
            mask &= key_pos[None, :] > query_pos[:, None] - self.window
        return mask

    def _explicit_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
    ) -> torch.Tensor:
        """Attention written out: softmax(q k^T * scale [soft-capped] + mask) v. For soft-capped
        scores (SDPA has no cap) and when a hook reads (or replaces) the weights."""
        if self.n_kv_head != self.n_head:
            repeat = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scale = self.scale if self.scale is not None else self.head_dim**-0.5
        scores = (q @ k.transpose(-1, -2)) * scale  # (B, nh, T, S)
        if self.softcap is not None:
            scores = _soft_cap(scores, self.softcap)
        if causal:
            t = q.shape[2]
            mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.hook_pattern(torch.softmax(scores.float(), dim=-1))  # (B, nh, T, S)
        weights = weights.to(q.dtype)
        if self.training and self.dropout:
            weights = F.dropout(weights, self.dropout)
        return weights @ v


class Mlp(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, f = config.d_model, config.ffn_dim
        self.gated = config.gated_mlp
        self.swiglu = config.mlp == "swiglu"
        self.approximate = config.gelu_approximate
        if self.gated:
            self.gate_up = Dense(d, 2 * f, bias=config.out_bias)  # one matmul for both
        else:
            self.up = Dense(d, f, bias=config.out_bias)
        self.down = Dense(f, d, bias=config.out_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, F) each
            if self.swiglu:
                return self.down(F.silu(gate) * up)
            return self.down(F.gelu(gate, approximate=self.approximate) * up)
        return self.down(F.gelu(self.up(x), approximate=self.approximate))


class Block(nn.Module):
    """One layer. The norms it has depend on config.norm_placement: attn_norm and mlp_norm
    before the sub-layers ("pre", "sandwich"), attn_post_norm and mlp_post_norm after them
    ("post", "sandwich")."""

    def __init__(self, config: ModelConfig, rotary: RotaryEmbedding | None, layer: int = 0) -> None:
        super().__init__()
        placement = config.norm_placement
        before, after = placement in ("pre", "sandwich"), placement in ("post", "sandwich")
        self.attn_norm = _norm(config) if before else None
        window = config.sliding_window if config.layer_type(layer) == "sliding" else None
        self.attn = Attention(config, rotary, window)
        self.attn_post_norm = _norm(config) if after else None
        mlp = config.mlp != "none"  # "none": an attention-only block
        self.mlp_norm = _norm(config) if before and mlp else None
        self.mlp = Mlp(config) if mlp else None
        self.mlp_post_norm = _norm(config) if after and mlp else None
        self.parallel = config.parallel_residual
        self.dropout = nn.Dropout(config.dropout)
        self.hook_resid_pre = HookPoint(f"blocks.{layer}.resid_pre")  # (B, T, C)
        self.hook_mlp_out = HookPoint(f"blocks.{layer}.mlp_out")  # (B, T, C)
        self.hook_resid_post = HookPoint(f"blocks.{layer}.resid_post")  # (B, T, C)
        self.attn.hook_pattern.name = f"blocks.{layer}.attn.pattern"
        self.attn.hook_head_out.name = f"blocks.{layer}.attn.head_out"

    def hook_points(self) -> tuple[HookPoint, ...]:
        """This block's hook points, in forward order (see tokenscope.lm.hooks)."""
        a = self.attn
        return (self.hook_resid_pre, a.hook_pattern, a.hook_head_out, self.hook_mlp_out,
                self.hook_resid_post)  # fmt: skip

    def forward(
        self, x: torch.Tensor, layer: int, start: int, cache: KVCache | None
    ) -> torch.Tensor:
        x = self.hook_resid_pre(x)  # (B, T, C)
        h = self.attn(_maybe(self.attn_norm, x), layer, start, cache)
        h = self.dropout(_maybe(self.attn_post_norm, h))
        if self.mlp is None:  # attention-only (mlp_out never fires)
            return self.hook_resid_post(x + h)
        if self.parallel:  # GPT-NeoX: both sub-layers read the block's input
            m = self.mlp(_maybe(self.mlp_norm, x))
            m = self.hook_mlp_out(self.dropout(_maybe(self.mlp_post_norm, m)))
            return self.hook_resid_post(x + h + m)
        x = x + h
        m = self.mlp(_maybe(self.mlp_norm, x))
        m = self.hook_mlp_out(self.dropout(_maybe(self.mlp_post_norm, m)))
        return self.hook_resid_post(x + m)


def _maybe(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if norm is None else norm(x)


class Transformer(nn.Module):
    """forward(ids) -> next-token logits at every (or the last) position."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = (
            nn.Embedding(c.context_length, c.d_model) if c.position == "learned" else None
        )
        rotary = local = RotaryEmbedding(c) if c.position == "rope" else None
        if rotary is not None and c.rope_local_base is not None:
            local = RotaryEmbedding(c, base=c.rope_local_base)  # for the sliding layers
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c, local if c.layer_type(i) == "sliding" else rotary, i) for i in range(c.n_layer)
        )
        self.final_norm = _norm(c)
        self.head = None if c.tie_embeddings else Dense(c.d_model, c.vocab_size, bias=False)
        # Set when the weights are packed (tokenscope.lm.packed): the output head as a layer
        # of its own, used instead of `head` or the tied embedding.
        self.output_layer: nn.Module | None = None
        self._head_copy: tuple[tuple[object, ...], torch.Tensor] | None = None
        # The mapped file packed layers' tensors live in (lm.formats.packed_cache), kept open.
        self.weight_map: object | None = None

    def set_output_layer(self, layer: nn.Module | None) -> None:
        """Compute logits with `layer` (a packed head) from now on; drop the untied head and
        the transposed copy of a tied one, which it replaces."""
        self.output_layer = layer
        if layer is not None:
            self.head = None
        self._head_copy = None

    @property
    def device(self) -> torch.device:
        return self.final_norm.weight.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """The type of the activations (packed layers convert to their own and back)."""
        return self.final_norm.weight.dtype

    def init_weights(self, seed: int | None = None) -> Transformer:
        """GPT-2 initialisation: N(0, 0.02), residual outputs scaled by 1/sqrt(2 * n_layer)."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("bias"):
                    p.zero_()
                elif "norm" in name:
                    p.fill_(1.0)
                else:
                    std = (
                        residual_std if name.endswith(("attn.out.weight", "down.weight")) else 0.02
                    )
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
        return self

    def new_cache(self, capacity: int | None = None, batch_size: int = 1) -> KVCache:
        """An empty KV cache that grows as needed up to the context length.

        `capacity` is the room to allocate at once, rounded up to a power of two of at least
        256 positions (at most the context length).
        """
        c = self.config
        start = min(power_of_two(max(capacity or 256, 256)), c.context_length)
        return KVCache(
            c.n_layer,
            c.kv_heads,
            c.head_dim,
            start,
            max_capacity=c.context_length,
            batch_size=batch_size,
            dtype=self.compute_dtype,
            device=self.device,
        )

    def _output_matrix(self) -> torch.Tensor:
        """The output projection as (C, V).

        With tied embeddings it is the embedding matrix transposed. Outside training a
        contiguous copy is kept, because x @ E.T reads E in the slow layout (see Dense);
        the copy is rebuilt whenever the embedding tensor is replaced or changed in place.
        """
        if self.head is not None:
            return self.head.weight
        e = self.embed.weight
        if torch.is_grad_enabled() and e.requires_grad:
            return e.t()
        # Tensors made in inference mode keep no version counter (and cannot change in place).
        version = 0 if e.is_inference() else e._version
        key = (id(e), version, e.device, e.dtype)
        if self._head_copy is None or self._head_copy[0] != key:
            self._head_copy = (key, e.detach().t().contiguous())
        return self._head_copy[1]

    def forward(
        self, ids: torch.Tensor, cache: KVCache | None = None, *, last_only: bool = False
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T); (B, 1, V) with last_only.

        With a cache, `ids` are the positions after those already cached, and the cache grows.
        """
        t = ids.shape[1]
        start = cache.length if cache is not None else 0
        if start + t > self.config.context_length:
            raise ValueError(
                f"{start + t} positions exceed the context length {self.config.context_length}"
            )
        x = self.embed(ids)  # (B, T, C)
        if x.dtype != self.compute_dtype:  # a packed embedding gives float32 rows
            x = x.to(self.compute_dtype)
        if self.config.embed_multiplier != 1.0:
            x = x * self.config.embed_multiplier
        if self.pos_embed is not None:
            x = x + self.pos_embed.weight[start : start + t]
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, i, start, cache)  # (B, T, C)
        if cache is not None:
            cache.commit()
        if last_only:
            x = x[:, -1:]
        return self.unembed(x)

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from residual-stream vectors (..., C): the model's own final norm, output
        head and soft cap (what the last layer feeds; the logit lens feeds any layer)."""
        x = self.final_norm(x)
        if self.output_layer is not None:
            logits = self.output_layer(x)
        else:
            logits = x @ self._output_matrix()  # (..., V)
        if self.config.final_softcap is not None:
            logits = _soft_cap(logits, self.config.final_softcap)
        return logits
