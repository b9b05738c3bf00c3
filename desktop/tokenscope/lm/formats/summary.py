"""What a model file or folder holds, read from its headers only (no weights are loaded).

Used by `tokenscope models list`: size on disk, parameter count, architecture and how the
weights are stored, for GGUF files, Hugging Face folders and native checkpoints alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenscope.lm.errors import ModelFormatError


@dataclass(frozen=True)
class ModelSummary:
    """One row of the model list; fields are None when they cannot be read."""

    path: Path
    size_bytes: int
    parameters: int | None
    architecture: str | None
    quantization: str | None
    problem: str | None = None  # why the model cannot be opened, if it cannot
    context_length: int | None = None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _gguf(path: Path) -> ModelSummary:
    from tokenscope.lm.formats.gguf_file import GGUFFile
    from tokenscope.lm.formats.gguf_model import quantization_of

    with GGUFFile(path) as gf:
        tensors = gf.tensors
        embed = tensors.get("token_embd.weight")
        out = tensors.get("output.weight")
        count = sum(t.n_elements for t in tensors.values())
        if embed is not None and out is not None and out.shape == embed.shape:
            # GPT-2 files store the tied head twice; a tied head is one set of parameters.
            same = bool((gf.tensor_bytes(out) == gf.tensor_bytes(embed)).all())
            count -= out.n_elements if same else 0
        count -= tensors["rope_freqs.weight"].n_elements if "rope_freqs.weight" in tensors else 0
        arch = str(gf.metadata.get("general.architecture"))
        context = gf.metadata.get(f"{arch}.context_length")
        return ModelSummary(
            path,
            path.stat().st_size,
            count,
            arch,
            quantization_of(gf.metadata, tensors),
            context_length=int(context) if isinstance(context, int) else None,
        )


def _folder(path: Path) -> ModelSummary:
    from tokenscope.lm.config import ModelConfig
    from tokenscope.lm.hf_names import config_from_hf

    meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if meta.get("format") == "tokenscope-checkpoint":
        config = ModelConfig.from_dict(meta["model"])
        architecture, dtype = "tokenscope", "F32"
    else:
        config = config_from_hf(meta)
        architecture = str(meta.get("model_type"))
        dtype = meta.get("torch_dtype") or meta.get("dtype")
    return ModelSummary(
        path,
        _size(path),
        config.parameter_count(),
        architecture,
        dtype,
        context_length=config.context_length,
    )


def summarize(path: str | Path) -> ModelSummary:
    """A summary of a model at `path`; a model that cannot be read says why in `problem`."""
    path = Path(path)
    try:
        if path.is_file() and path.suffix.lower() == ".gguf":
            return _gguf(path)
        if path.is_dir() and (path / "config.json").is_file():
            return _folder(path)
        if path.is_dir() and len(ggufs := sorted(path.glob("*.gguf"))) == 1:
            return _gguf(ggufs[0])
        problem = "no such file or folder" if not path.exists() else "not a model"
    except (ModelFormatError, OSError, ValueError, KeyError, TypeError) as e:
        problem = str(e)
    size = _size(path) if path.exists() else 0
    return ModelSummary(path, size, None, None, None, problem)
