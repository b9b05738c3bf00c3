"""load_model: from a name or a path to a LanguageModel, or a message that says why not."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from tokenscope.files import kind_of, resource_path, shown
from tokenscope.lm.checkpoint import EXPECTED, PICKLE_SUFFIXES, load_checkpoint
from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError
from tokenscope.lm.formats.safe_io import open_file, stat_path
from tokenscope.lm.hub import is_hub_ref
from tokenscope.lm.hub import resolve as hub_resolve
from tokenscope.lm.language_model import LanguageModel
from tokenscope.lm.packed import half_layout, int4_available, is_packed, quantize_int4
from tokenscope.lm.progress import Reporter, reporting
from tokenscope.lm.registry import KNOWN_MODELS, resolve_known
from tokenscope.lm.weight_modes import AUTO, DTYPE_CHOICES, INT4, INT8

BUILTIN = "builtin"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def builtin_model_path() -> Path:
    """Where the bundled default model lives inside the installed package."""
    return resource_path("models", "default")


def _is_gguf(path: Path) -> bool:
    if path.suffix.lower() == ".gguf":
        return True
    with open_file(path, "a model file") as f:
        return f.read(4) == b"GGUF"


def _load_folder(
    path: Path, device: str, dtype: torch.dtype | None, packing: str | None = None
) -> LanguageModel:
    from tokenscope.lm.formats.hf_folder import is_hf_folder, load_hf_folder

    if is_hf_folder(path):
        return load_hf_folder(path, device=device, dtype=dtype)
    ggufs = sorted(path.glob("*.gguf"))
    if stat_path(path / "config.json") is None and len(ggufs) == 1:
        return _load_file(ggufs[0], device, dtype, packing)
    model = load_checkpoint(path, device=device)
    if dtype is not None:
        model.transformer.to(dtype=dtype)
    return model


def _load_file(
    path: Path, device: str, dtype: torch.dtype | None, packing: str | None = None
) -> LanguageModel:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFormatError(
            f"{path} is a pickle file; Tokenscope never loads pickles because opening one "
            "can run arbitrary code. Convert it to safetensors."
        )
    if _is_gguf(path):
        from tokenscope.lm.formats.gguf_model import load_gguf

        return load_gguf(path, device=device, dtype=dtype, packing=packing)
    if path.name in ("config.json", "model.safetensors", "tokenizer.json"):
        return _load_folder(path.parent, device, dtype, packing)
    raise ModelFormatError(
        f"{path} is not a model Tokenscope can open ({path.suffix or 'no extension'}); "
        f"{EXPECTED}, a Hugging Face folder (config.json, *.safetensors, tokenizer.json), "
        "or a .gguf file."
    )


def load_model(
    name_or_path: str | Path = BUILTIN,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype | None = None,
    progress: Reporter | None = None,
) -> LanguageModel:
    """Load a model.

    - "builtin": the default model bundled with Tokenscope;
    - a known name such as "smollm2-135m" (see tokenscope.lm.registry; `tokenscope models
      pull NAME` installs it);
    - "hf:ORG/REPO[@REVISION]" or "hf:ORG/REPO/FILE.gguf": a Hub model already in the Hugging
      Face cache (`tokenscope models pull hf:...` downloads it; see tokenscope.lm.hub);
    - a path to a native checkpoint folder (config.json, model.safetensors, tokenizer.json),
      a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a .gguf file.

    `dtype`:
    - "auto" (or None, the default): a GGUF file's matrices stay as small as the file stores
      them (4-bit blocks as int4 groups, other blocks float16, the head float16; see
      tokenscope.lm.formats.gguf_packing); other models load in float32;
    - "float32": every weight dequantized to float32 (the reference numbers);
    - "bfloat16": half the memory, slightly different numbers;
    - "int8": the blocks' matrices as int8 rows (tokenscope.lm.formats.int8);
    - "int4": the blocks' matrices as 4-bit groups of 32 (exact for 4-bit GGUF blocks,
      rounded otherwise), the output head float16.
    Raises ModelNotFoundError or ModelFormatError with a message meant for a person.

    `progress(stage, done, total)` is called as the load goes on (see tokenscope.lm.progress);
    an exception it raises stops the load and comes out of this call.
    """
    if progress is not None:
        with reporting(progress):
            return load_model(name_or_path, device=device, dtype=dtype)
    if dtype is None:
        dtype = AUTO
    if dtype == INT8:
        from tokenscope.lm.formats.int8 import quantize_blocks_int8

        model = load_model(name_or_path, device=device, dtype="float32")
        quantize_blocks_int8(model.transformer)
        model.quantization = f"{model.quantization or 'F32'} -> int8"
        return model
    if isinstance(dtype, str) and dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)} (got {dtype!r})")
    if dtype == INT4 and (device != "cpu" or not int4_available()):
        raise ValueError(
            "int4 needs PyTorch's CPU int4 kernel (_weight_int4pack_mm_for_cpu); this "
            f"PyTorch or device ({device}) has none: use auto or bfloat16 instead"
        )
    if dtype in (AUTO, INT4):
        model = _load_any(name_or_path, device, None, dtype)
        if dtype == INT4 and not is_packed(model.transformer):
            # Not a GGUF file (or one the plan left alone): quantize what was loaded.
            quantize_int4(model.transformer, device)
            model.packing = "int4 g32 (rounded) + fp16 head"
            model.forget_cache()
        return model
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    model = _load_any(name_or_path, device, dtype, None)
    if dtype in (torch.bfloat16, torch.float16):
        half_layout(model.transformer)
        model.packing = f"{str(dtype).removeprefix('torch.')} (out, in)"
        model.forget_cache()
    return model


def _load_any(
    name_or_path: str | Path, device: str, dtype: torch.dtype | None, packing: str | None
) -> LanguageModel:
    name = str(name_or_path)
    if name == BUILTIN:
        path = builtin_model_path()
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"the bundled default model is not in this installation ({path} is missing); "
                "open a checkpoint folder instead"
            )
        return _load_folder(path, device, dtype, packing)
    if name in KNOWN_MODELS:
        model = _load_file(resolve_known(name), device, dtype, packing)
        model.name = name
        return model
    if isinstance(name_or_path, str) and is_hub_ref(name):  # hf:ORG/REPO..., from the cache
        path = hub_resolve(name)
        model = (_load_file if path.is_file() else _load_folder)(path, device, dtype, packing)
        model.name = name
        return model
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"load_model takes a model name or a path (got {type(name_or_path).__name__})"
        )
    try:
        path = Path(name_or_path).expanduser()
    except RuntimeError:  # "~someone" for a user that does not exist
        path = Path(name_or_path)
    st = stat_path(path)
    if st is None:
        known = ", ".join(repr(n) for n in (BUILTIN, *sorted(KNOWN_MODELS)))
        raise ModelNotFoundError(
            f"no model named {shown(name)!r}: it is neither a known name ({known}) "
            "nor an existing file or folder"
        )
    if stat.S_ISREG(st.st_mode):
        return _load_file(path, device, dtype, packing)
    if stat.S_ISDIR(st.st_mode):
        return _load_folder(path, device, dtype, packing)
    raise ModelFormatError(
        f"{shown(path)} is {kind_of(st.st_mode)}, not a model file or folder; {EXPECTED}, "
        "a Hugging Face folder or a .gguf file."
    )
