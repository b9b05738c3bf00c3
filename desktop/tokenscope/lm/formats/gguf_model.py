"""Load a GGUF file (llama.cpp's format) into our Transformer, dequantized to float32.

The metadata gives the shape (`{arch}.block_count`, `{arch}.rope.freq_base`, ...), the
tokenizer and the chat template; the tensors are mapped onto ours by the tables in
tokenscope.lm.hf_names (GGUF_ARCHITECTURES). Nothing in the file is ever executed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, LlamaFileType

from tokenscope.lm.config import (
    MAX_CONTEXT_LENGTH,
    MAX_D_FF,
    MAX_D_MODEL,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_ROPE_BASE,
    MAX_ROPE_FACTOR,
    ModelConfig,
    model_name,
)
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats import packed_cache
from tokenscope.lm.formats.dequantize import check_readable, dequantize
from tokenscope.lm.formats.empty_model import empty_transformer
from tokenscope.lm.formats.gguf_file import GGUFFile, TensorInfo
from tokenscope.lm.formats.gguf_packing import finish_tied_head, install, pack_gguf
from tokenscope.lm.formats.gguf_tokenizer import tokenizer_from_gguf
from tokenscope.lm.heap import fix_mmap_threshold, trim
from tokenscope.lm.hf_names import GGUF_ARCHITECTURES, apply_rules, plan_shapes
from tokenscope.lm.language_model import LanguageModel
from tokenscope.lm.model import RotaryEmbedding, Transformer
from tokenscope.lm.packed import Fp16Linear, keeping_sources
from tokenscope.lm.progress import report


class _Meta:
    """Typed lookups of `{arch}.*` metadata with messages that name the key and the range."""

    def __init__(self, meta: Mapping[str, Any], arch: str, path: Path) -> None:
        self.meta, self.arch, self.path = meta, arch, path

    def _value(self, key: str, default: float | EllipsisType) -> tuple[str, Any]:
        full = f"{self.arch}.{key}"
        value = self.meta.get(full, default)
        if value is ...:
            raise ModelFormatError(f"{self.path} lacks the metadata {full!r}")
        if isinstance(value, np.ndarray):  # per-layer arrays: accepted when every layer agrees
            if value.ndim != 1 or value.size == 0 or not (value == value[0]).all():
                raise ModelFormatError(f"{self.path}: {full} differs between layers: unsupported")
            value = value[0].item()
        return full, value

    def whole(self, key: str, default: int | EllipsisType = ..., *, low: int = 1, high: int) -> int:
        """An integer in low..high."""
        full, value = self._value(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelFormatError(f"{self.path}: {full} = {_short(value)} is not a whole number")
        if not low <= value <= high:
            raise ModelFormatError(
                f"{self.path}: {full} = {value:,} is out of range (expected {low:,}..{high:,})"
            )
        return value

    def real(
        self, key: str, default: float | EllipsisType = ..., *, low: float, high: float
    ) -> float:
        """A finite number in (low, high]."""
        full, value = self._value(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ModelFormatError(f"{self.path}: {full} = {_short(value)} is not a number")
        number = float(value)
        if not low < number <= high:  # also refuses NaN
            raise ModelFormatError(
                f"{self.path}: {full} = {number:g} is out of range (expected above {low:g} and "
                f"at most {high:g})"
            )
        return number


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def architecture_of(meta: Mapping[str, Any], path: Path) -> str:
    """`general.architecture`, or a message naming it and what is supported."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or arch not in GGUF_ARCHITECTURES:
        supported = ", ".join(sorted(GGUF_ARCHITECTURES))
        raise ModelFormatError(
            f"{path}: architecture {_short(arch)} is not supported (supported: {supported}; "
            "Llama 2/3, SmolLM, Mistral and TinyLlama files say 'llama')"
        )
    return arch


def quantization_of(meta: Mapping[str, Any], tensors: Mapping[str, TensorInfo]) -> str:
    """A label such as "Q4_1": the file type it declares, else its most common matrix type."""
    file_type = meta.get("general.file_type")
    if file_type is not None:
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except (TypeError, ValueError, OverflowError):
            pass
    kinds = [t.qtype.name for t in tensors.values() if len(t.shape) == 2]
    return max(set(kinds), key=kinds.count) if kinds else "unknown"


def _llama3_scaling(gf: GGUFFile, m: _Meta, config: ModelConfig) -> dict[str, float] | None:
    """Llama 3.1+ store RoPE scaling as a tensor of per-frequency divisors (rope_freqs).

    Our model computes those divisors from four numbers; take them from the metadata (or
    Llama 3's published defaults) and accept them only if they reproduce the tensor.
    """
    info = gf.tensors.get("rope_freqs.weight")
    if info is None:
        return None
    if info.shape != (config.head_dim // 2,):
        raise ModelFormatError(
            f"{gf.path}: rope_freqs.weight has the shape {info.shape}; expected "
            f"({config.head_dim // 2},), one factor per rotary frequency"
        )
    divisors = dequantize(gf.tensor_bytes(info), info.qtype, info.shape, info.name).double()
    if not bool(torch.isfinite(divisors).all()) or float(divisors.min()) < 1.0:
        raise ModelFormatError(
            f"{gf.path}: rope_freqs.weight holds factors below 1 or not finite; expected "
            "Llama 3's RoPE scaling divisors (1 and above)"
        )
    scaling = {
        "factor": float(divisors.max()),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_context_length": float(
            m.whole("rope.scaling.original_context_length", 8192, high=MAX_CONTEXT_LENGTH)
        ),
    }
    plain = RotaryEmbedding(config)._inverse_frequencies()
    scaled = RotaryEmbedding(config.replace(rope_scaling=scaling))._inverse_frequencies()
    if divisors.shape != plain.shape or not torch.allclose(plain / scaled, divisors, rtol=1e-3):
        raise ModelFormatError(
            f"{gf.path}: its RoPE frequency factors (rope_freqs) are not Llama 3's scaling; "
            "this kind of RoPE scaling is not supported"
        )
    return scaling


def config_from_gguf(gf: GGUFFile, arch: str, name: str) -> ModelConfig:
    """Our ModelConfig from a GGUF file's metadata and tensor shapes."""
    m = _Meta(gf.metadata, arch, gf.path)
    spec = GGUF_ARCHITECTURES[arch]
    embed = gf.tensors.get("token_embd.weight")
    if embed is None or len(embed.shape) != 2:
        raise ModelFormatError(f"{gf.path} has no token embedding (token_embd.weight)")
    n_head = m.whole("attention.head_count", high=MAX_HEADS)
    common: dict[str, Any] = {
        "name": name,
        "vocab_size": embed.shape[0],
        "context_length": m.whole("context_length", high=MAX_CONTEXT_LENGTH),
        "n_layer": m.whole("block_count", high=MAX_LAYERS),
        "n_head": n_head,
        "d_model": m.whole("embedding_length", high=MAX_D_MODEL),
        "d_ff": m.whole("feed_forward_length", high=MAX_D_FF),
        "tie_embeddings": _tied(gf),
    }
    try:
        if spec["style"] == "gpt2":
            return ModelConfig(
                **common,
                norm_eps=m.real("attention.layer_norm_epsilon", 1e-5, low=0.0, high=1.0),
                gelu_approximate="tanh",
            )
        if spec["style"] == "gemma3":
            return _gemma3_config(gf, m, common)
        head_dim = common["d_model"] // n_head
        for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
            value = m.whole(key, head_dim, high=MAX_D_MODEL)
            if value != head_dim:
                raise ModelFormatError(
                    f"{gf.path}: {arch}.{key} = {value} differs from the head size {head_dim} "
                    "(partial rotary or uneven heads are not supported)"
                )
        scaling_type = gf.metadata.get(f"{arch}.rope.scaling.type", "none")
        if (
            not isinstance(scaling_type, str)
            or scaling_type not in ("none", "linear")
            or (
                scaling_type == "linear"
                and m.real("rope.scaling.factor", 1.0, low=0.0, high=MAX_ROPE_FACTOR) != 1.0
            )
        ):
            raise ModelFormatError(
                f"{gf.path}: RoPE scaling {_short(scaling_type)} is not supported"
            )
        if m.whole("attention.sliding_window", 0, low=0, high=MAX_CONTEXT_LENGTH):
            raise ModelFormatError(f"{gf.path}: sliding-window attention is not supported")
        config = ModelConfig(
            **common,
            n_kv_head=m.whole("attention.head_count_kv", n_head, high=MAX_HEADS),
            position="rope",
            norm="rmsnorm",
            mlp="swiglu",
            norm_eps=m.real("attention.layer_norm_rms_epsilon", 1e-5, low=0.0, high=1.0),
            rope_base=m.real("rope.freq_base", 10000.0, low=1.0, high=MAX_ROPE_BASE),
            qkv_bias=spec["qkv_bias"] or "blk.0.attn_q.bias" in gf.tensors,
            out_bias="blk.0.attn_output.bias" in gf.tensors,
        )
        return config.replace(rope_scaling=_llama3_scaling(gf, m, config))
    except ValueError as e:
        raise ModelFormatError(f"{gf.path}: {e}") from None


# What llama.cpp fixes for Gemma 3 rather than storing: the RoPE base of the sliding layers,
# and that every sixth layer is global (the others slide).
GEMMA3_LOCAL_ROPE_BASE = 10000.0
GEMMA3_GLOBAL_EVERY = 6


def _gemma3_config(gf: GGUFFile, m: _Meta, common: dict[str, Any]) -> ModelConfig:
    """Gemma 3 as llama.cpp runs it: sandwich norms, QK-norm, GeGLU, embeddings scaled by
    sqrt(width), five sliding-window layers to each global one, two RoPE bases."""
    n_layer, d_model, n_head = common["n_layer"], common["d_model"], common["n_head"]
    head_size = m.whole("attention.key_length", high=MAX_D_MODEL)
    if m.whole("attention.value_length", head_size, high=MAX_D_MODEL) != head_size:
        raise ModelFormatError(f"{gf.path}: keys and values of different sizes are not supported")
    scaling_type = gf.metadata.get("gemma3.rope.scaling.type", "none")
    if scaling_type not in ("none", "linear") or (
        scaling_type == "linear"
        and m.real("rope.scaling.factor", 1.0, low=0.0, high=MAX_ROPE_FACTOR) != 1.0
    ):
        raise ModelFormatError(
            f"{gf.path}: Gemma 3's RoPE scaling ({_short(scaling_type)}, as in its 4B and larger "
            "models) is not supported"
        )
    pattern = gf.metadata.get("gemma3.attention.sliding_window_pattern")
    if isinstance(pattern, np.ndarray) and pattern.shape == (n_layer,):
        sliding = [bool(v) for v in pattern]
    else:
        sliding = [(i + 1) % GEMMA3_GLOBAL_EVERY != 0 for i in range(n_layer)]
    # llama.cpp scales scores by 1/sqrt(head size), except for the 27B model (width 5376),
    # whose published query_pre_attn_scalar is width / heads.
    scalar = d_model / n_head if d_model == 5376 else head_size
    return ModelConfig(
        **common,
        n_kv_head=m.whole("attention.head_count_kv", n_head, high=MAX_HEADS),
        head_size=head_size,
        position="rope",
        norm="rmsnorm",
        mlp="geglu",
        gelu_approximate="tanh",
        norm_eps=m.real("attention.layer_norm_rms_epsilon", 1e-6, low=0.0, high=1.0),
        rope_base=m.real("rope.freq_base", 1e6, low=1.0, high=MAX_ROPE_BASE),
        rope_local_base=GEMMA3_LOCAL_ROPE_BASE,
        qkv_bias=False,
        out_bias=False,
        qk_norm="head",
        norm_placement="sandwich",
        embed_multiplier=float(d_model) ** 0.5,
        attn_scale=float(scalar) ** -0.5,
        layer_types=tuple("sliding" if s else "full" for s in sliding),
        sliding_window=m.whole("attention.sliding_window", high=MAX_CONTEXT_LENGTH),
        final_softcap=(
            m.real("final_logit_softcapping", low=0.0, high=1e6)
            if "gemma3.final_logit_softcapping" in gf.metadata
            else None
        ),
    )


def _tied(gf: GGUFFile) -> bool:
    """Whether the output head is the embedding: no output.weight, or a byte-equal copy."""
    out, embed = gf.tensors.get("output.weight"), gf.tensors["token_embd.weight"]
    if out is None:
        return True
    # GPT-2's converter writes the tied matrix twice; keeping one copy halves its memory.
    return (out.qtype, out.shape) == (embed.qtype, embed.shape) and bool(
        (gf.tensor_bytes(out) == gf.tensor_bytes(embed)).all()
    )


class _Tensors(Mapping[str, torch.Tensor]):
    """The file's tensors by GGUF name, dequantized when looked up.

    With `rows_permuted`, Q and K come back in Hugging Face's row order: llama.cpp's converter
    interleaves each head's two rotary halves (row h*hs + 2i + j holds HF row h*hs + j*hs/2 + i).
    """

    def __init__(self, gf: GGUFFile, config: ModelConfig, rows_permuted: bool) -> None:
        self.gf, self.config, self.rows_permuted = gf, config, rows_permuted

    def __getitem__(self, name: str) -> torch.Tensor:
        info = self.gf.tensors[name]
        w = dequantize(self.gf.tensor_bytes(info), info.qtype, info.shape, name)
        if self.rows_permuted and name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = self.config.n_head if "attn_q" in name else self.config.kv_heads
            rows, cols = w.shape
            w = w.reshape(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)
        return w

    def __contains__(self, name: object) -> bool:
        return name in self.gf.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.gf.tensors)

    def __len__(self) -> int:
        return len(self.gf.tensors)


def load_gguf(
    path: str | Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    packing: str | None = None,
) -> LanguageModel:
    """A LanguageModel from a GGUF file.

    With `packing` "auto" or "int4", matrices stay small in memory as the file stores them
    (see tokenscope.lm.formats.gguf_packing); otherwise every weight is dequantized to float32
    (or `dtype`).
    """
    from tokenscope.lm.checkpoint import assemble_model

    path = Path(path)
    fix_mmap_threshold()
    report("reading the file's header")
    with GGUFFile(path) as gf:
        arch = architecture_of(gf.metadata, path)
        name = model_name(gf.metadata.get("general.name"), path.stem)
        config = config_from_gguf(gf, arch, name)
        report("building the tokenizer")
        tokenizer, add_bos = tokenizer_from_gguf(gf.metadata, source=str(path))
        transformer = empty_transformer(config)
        spec = GGUF_ARCHITECTURES[arch]
        targets = set(transformer.state_dict())
        # Shapes and types first: a file whose tensors do not fit its own metadata is refused
        # before a single tensor is dequantized.
        _check_plan(gf, config, spec, transformer, targets)
        packed_label = None
        cached = _from_cache(path, packing, transformer) if device == "cpu" else None
        try:
            if cached is not None:
                done, packed_label, mapping = cached
                targets -= done
            elif packing is not None:
                with keeping_sources():
                    done, packed_label = pack_gguf(
                        gf, config, spec, transformer, targets, packing, device
                    )
                targets -= done
            state = apply_rules(
                _Tensors(gf, config, spec["rows_permuted"]), spec["rules"], config, targets
            )
        except (RuntimeError, ValueError) as e:  # what the checks above did not foresee
            raise ModelFormatError(
                f"{path}: its tensors cannot be decoded ({_first_line(e)})"
            ) from None
        quantization = quantization_of(gf.metadata, gf.tensors)
        template = gf.metadata.get("tokenizer.chat_template")
    unused = _unused_weights(gf, config)
    if unused:
        raise ModelFormatError(
            f"{path} has tensors Tokenscope does not know how to use ({', '.join(unused[:4])}); "
            "loading without them would give wrong predictions"
        )
    model = assemble_model(
        transformer,
        state,
        tokenizer,
        path,
        device=device,
        dtype=dtype,
        name=name,
        add_bos=add_bos,
        chat_template=template if isinstance(template, str) else None,
        architecture=arch,
        quantization=quantization,
    )
    if packed_label is not None:
        finish_tied_head(model.transformer, device)
        model.packing = packed_label
        model.forget_cache()
        if cached is not None:
            model.transformer.weight_map = mapping  # the layers' tensors live in it
        elif packing is not None and device == "cpu":
            _to_cache(model.transformer, path, packing, done, packed_label)
    trim()
    return model


def _from_cache(
    path: Path, packing: str | None, transformer: Transformer
) -> tuple[set[str], str, Any] | None:
    """Put the cached packed layers of this file into `transformer` (see packed_cache);
    None where there are none that fit (then the file is packed and the cache written)."""
    if packing is None or not packed_cache.enabled():
        return None
    try:
        modules, done, label, mapping = packed_cache.load(path, packing)
    except (OSError, packed_cache.CacheMismatch):
        return None
    report("mapping the packed weights")
    for where, module in modules.items():
        if where == "output_layer":
            transformer.set_output_layer(module)
        else:
            install(transformer, where + ".weight", module)
    return done, label, mapping


def _to_cache(
    transformer: Transformer, path: Path, packing: str, done: set[str], label: str
) -> None:
    """Write the packed layers for the next load; a cache that cannot be written is no error
    (the next load packs again)."""
    try:
        if packed_cache.enabled():
            report("keeping the packed weights for the next load")
            packed_cache.save(transformer, packed_cache.key_for(path, packing), done, label)
    except (OSError, ValueError):
        pass
    finally:
        for _, module in transformer.named_modules():
            if isinstance(module, Fp16Linear):
                module.source = None


def _check_plan(
    gf: GGUFFile,
    config: ModelConfig,
    spec: dict[str, Any],
    transformer: Transformer,
    targets: set[str],
) -> None:
    """Refuse tensors that are missing, of the wrong shape or of an unreadable type."""
    from tokenscope.lm.checkpoint import check_state_dict

    shapes = {name: info.shape for name, info in gf.tensors.items()}
    try:
        plan, used = plan_shapes(shapes, spec["rules"], config, targets)
    except ModelFormatError as e:
        raise ModelFormatError(f"{gf.path}: {e}") from None
    check_state_dict(transformer, plan, gf.path)
    for name in sorted(used):
        try:
            check_readable(gf.tensors[name].qtype, name)
        except ModelFormatError as e:
            raise ModelFormatError(f"{gf.path}: {e}") from None
        if spec["rows_permuted"] and name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.n_head if "attn_q" in name else config.kv_heads
            if shapes[name] != (heads * config.head_dim, config.d_model):
                raise ModelFormatError(
                    f"{gf.path}: {name} has the shape {shapes[name]}; expected "
                    f"{(heads * config.head_dim, config.d_model)}"
                )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _unused_weights(gf: GGUFFile, config: ModelConfig) -> list[str]:
    """Tensors in the file that no rule reads: a sign of an architecture variant we would
    silently get wrong (e.g. extra norms). rope_freqs is read by the config instead."""
    arch = architecture_of(gf.metadata, gf.path)
    used = {"rope_freqs.weight"}
    for _, sources, _ in GGUF_ARCHITECTURES[arch]["rules"]:
        for s in sources:
            used.update(s.format(i=i) for i in range(config.n_layer)) if "{i}" in s else used.add(s)
    return sorted(n for n in gf.tensors if n not in used)


__all__ = ["GGMLQuantizationType", "config_from_gguf", "load_gguf", "quantization_of"]
