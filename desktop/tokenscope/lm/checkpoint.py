"""Native checkpoint folders: config.json + model.safetensors + tokenizer.json.

    config.json         {"format": "tokenscope-checkpoint", "format_version": 1,
                         "model": {ModelConfig fields}, "tokenizer": {"bos_id", "eos_id"},
                         "add_bos": false, "name": "..."}
    model.safetensors   the Transformer's tensors, named as in tokenscope.lm.model
    tokenizer.json      a Hugging Face `tokenizers` file

Weights are data, never code: only safetensors is read, and every problem with a folder is
reported as a ModelFormatError that names the file and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tokenscope import __version__
from tokenscope.files import atomic_write
from tokenscope.lm.config import ModelConfig
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.model import Transformer
from tokenscope.lm.progress import report
from tokenscope.lm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel

FORMAT = "tokenscope-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"
EXPECTED = (
    f"a Tokenscope checkpoint folder holds {CONFIG_FILE}, {WEIGHTS_FILE} and {TOKENIZER_FILE}"
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def write_checkpoint(
    folder: str | Path,
    transformer: Transformer,
    tokenizer: Tokenizer,
    *,
    name: str,
    add_bos: bool = False,
) -> Path:
    """Write a native checkpoint folder; each file is replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in transformer.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": FORMAT}))
    tokenizer.save(folder / TOKENIZER_FILE)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created_by": f"tokenscope {__version__}",
        "model": transformer.config.to_dict(),
        "tokenizer": {"bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id},
        "add_bos": add_bos,
    }
    atomic_write(folder / CONFIG_FILE, lambda p: Path(p).write_text(json.dumps(config, indent=2)))
    return folder


def save_checkpoint(model: LanguageModel, folder: str | Path) -> Path:
    """Save a model as a native checkpoint folder."""
    return write_checkpoint(
        folder, model.transformer, model.tokenizer, name=model.name, add_bos=model.add_bos
    )


def read_checkpoint_config(folder: Path) -> dict[str, Any]:
    """Read and check config.json; refuse foreign folders with a message saying what they are."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise ModelFormatError(f"{folder} has no {CONFIG_FILE} (found: {found}); {EXPECTED}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path} is not valid JSON ({e}); {EXPECTED}.") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{path} holds {type(config).__name__}, not a JSON object.")
    if config.get("format") != FORMAT:
        if "model_type" in config:
            raise ModelFormatError(
                f"{folder} is a Hugging Face model folder (model_type "
                f"{config['model_type']!r}), not a Tokenscope checkpoint; {EXPECTED}."
            )
        raise ModelFormatError(
            f'{path} does not say "format": "{FORMAT}"; it is not a Tokenscope checkpoint.'
        )
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} has format_version {version!r}; this Tokenscope reads versions up to "
            f"{FORMAT_VERSION}. A newer Tokenscope wrote it: update Tokenscope to open it."
        )
    return config


def _check_weights_file(path: Path) -> None:
    if path.is_file():
        return
    pickles = [p.name for p in path.parent.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise ModelFormatError(
            f"{path.parent} has {', '.join(pickles)} but no {WEIGHTS_FILE}. Pickle files are "
            "never loaded because opening one can run arbitrary code; convert them to safetensors."
        )
    raise ModelFormatError(f"{path.parent} has no {WEIGHTS_FILE}; {EXPECTED}.")


def _load_state(path: Path, device: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(
            f"{path} is not a readable safetensors file ({e}). It may be truncated or corrupt."
        ) from None


def match_state_dict(
    model: Transformer, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    """Load `state` into a model built on the meta device, after checking names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}" + ("..." * (len(missing) > 5)))
    if unexpected:
        problems.append(
            f"unexpected tensors: {', '.join(unexpected[:5])}" + ("..." * (len(unexpected) > 5))
        )
    if wrong:
        problems.append(f"wrong shapes: {', '.join(wrong[:5])}" + ("..." * (len(wrong) > 5)))
    if problems:
        raise ModelFormatError(f"{source} does not match its config: " + "; ".join(problems))
    model.load_state_dict(state, assign=True, strict=True)


def assemble_model(
    transformer: Transformer,
    state: dict[str, torch.Tensor],
    tokenizer: Tokenizer,
    source: str | Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    **info: Any,
) -> LanguageModel:
    """The last step of every loader: fill an empty model, place it, pair it with its tokenizer.

    `info` goes to LanguageModel (name, add_bos, chat_template, ...). Problems are reported as
    ModelFormatError naming `source`.
    """
    from tokenscope.lm.language_model import LanguageModel

    report("placing the weights")
    match_state_dict(transformer, state, source)
    if dtype is not None or device != "cpu":
        transformer.to(device=device, dtype=dtype)
    try:
        return LanguageModel(transformer, tokenizer, source=str(source), **info)
    except ValueError as e:
        raise ModelFormatError(f"{source}: {e}") from None


def load_checkpoint(folder: str | Path, *, device: str = "cpu") -> LanguageModel:
    """Load a native checkpoint folder written by save_checkpoint (or by training)."""
    from tokenscope.lm.formats.empty_model import empty_transformer

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(
            f'{folder / CONFIG_FILE} has no valid "model" section: {e}'
        ) from None
    weights = folder / WEIGHTS_FILE
    _check_weights_file(weights)
    report("reading the weights")
    state = _load_state(weights, device)
    tok_meta = config.get("tokenizer") or {}
    tokenizer_path = folder / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise ModelFormatError(f"{folder} has no {TOKENIZER_FILE}; {EXPECTED}.")
    report("building the tokenizer")
    tokenizer = Tokenizer.from_file(
        tokenizer_path, bos_id=tok_meta.get("bos_id"), eos_id=tok_meta.get("eos_id")
    )
    return assemble_model(
        empty_transformer(model_config),
        state,
        tokenizer,
        folder,
        name=str(config.get("name") or folder.name),
        add_bos=bool(config.get("add_bos", False)),
    )
