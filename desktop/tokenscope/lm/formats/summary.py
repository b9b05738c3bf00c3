"""What a model file or folder holds, read from its headers only (no weights are loaded).

Used by `tokenscope models list`: size on disk, parameter count, architecture and how the
weights are stored, for GGUF files, Hugging Face folders and native checkpoints alike.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError
from tokenscope.lm.formats.safe_io import read_json_object, stat_path


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
    try:
        st = stat_path(path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else 0
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    except (OSError, ModelFormatError, ModelNotFoundError):
        return 0


def _gguf(path: Path) -> ModelSummary:
    from tokenscope.lm.formats.gguf_file import GGUFFile
    from tokenscope.lm.formats.gguf_model import quantization_of

    with GGUFFile(path, strings=False) as gf:
        tensors = gf.tensors
        embed = tensors.get("token_embd.weight")
        out = tensors.get("output.weight")
        count = sum(t.n_elements for t in tensors.values())
        if embed is not None and out is not None and out.shape == embed.shape:
            # GPT-2 files store the tied head twice; a tied head is one set of parameters.
            same = bool((gf.tensor_bytes(out) == gf.tensor_bytes(embed)).all())
            count -= out.n_elements if same else 0
        count -= tensors["rope_freqs.weight"].n_elements if "rope_freqs.weight" in tensors else 0
        arch = str(gf.metadata.get("general.architecture"))[:40]
        context = gf.metadata.get(f"{arch}.context_length")
        if isinstance(context, bool) or not isinstance(context, int):
            context = None
        return ModelSummary(
            path,
            path.stat().st_size,
            count,
            arch,
            quantization_of(gf.metadata, tensors),
            context_length=context,
        )


def _folder(path: Path) -> ModelSummary:
    from tokenscope.lm.config import ModelConfig
    from tokenscope.lm.hf_config import config_from_hf

    meta = read_json_object(path / "config.json", "a model's config.json")
    dtype: str | None  # shown as the quantization
    if meta.get("format") == "tokenscope-checkpoint":
        config = ModelConfig.from_dict(meta.get("model"))
        architecture, dtype = "tokenscope", "F32"
    else:
        config = config_from_hf(meta)
        architecture = str(meta.get("model_type"))
        dtype = meta.get("torch_dtype") or meta.get("dtype")
        dtype = dtype if isinstance(dtype, str) and len(dtype) <= 40 else None
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
        st = stat_path(path)
        if st is None:
            problem = "no such file or folder"
        elif stat.S_ISREG(st.st_mode) and path.suffix.lower() == ".gguf":
            return _gguf(path)
        elif stat.S_ISDIR(st.st_mode) and stat_path(path / "config.json") is not None:
            return _folder(path)
        elif stat.S_ISDIR(st.st_mode) and len(ggufs := sorted(path.glob("*.gguf"))) == 1:
            return _gguf(ggufs[0])
        else:
            problem = "not a model"
    except (ModelFormatError, ModelNotFoundError, OSError, ValueError, KeyError, TypeError) as e:
        problem = str(e)
    return ModelSummary(path, _size(path), None, None, None, problem)
