"""load_model: from a name or a path to a LanguageModel, or a message that says why not."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tokenscope.lm.checkpoint import EXPECTED, PICKLE_SUFFIXES, load_checkpoint
from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError
from tokenscope.lm.language_model import LanguageModel

BUILTIN = "builtin"


def builtin_model_path() -> Path:
    """Where the bundled default model lives inside the installed package."""
    return Path(str(resources.files("tokenscope.resources"))) / "models" / "default"


def load_model(name_or_path: str | Path = BUILTIN, *, device: str = "cpu") -> LanguageModel:
    """Load a model.

    - "builtin": the default model bundled with Tokenscope;
    - a path to a native checkpoint folder (config.json, model.safetensors, tokenizer.json).

    Raises ModelNotFoundError or ModelFormatError with a message meant for a person.
    """
    if str(name_or_path) == BUILTIN:
        path = builtin_model_path()
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"the bundled default model is not in this installation ({path} is missing); "
                "open a checkpoint folder instead"
            )
        return load_checkpoint(path, device=device)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"no model named {str(name_or_path)!r}: it is neither a known name ({BUILTIN!r}) "
            "nor an existing file or folder"
        )
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelFormatError(
                f"{path} is a pickle file; Tokenscope never loads pickles because opening one "
                "can run arbitrary code. Convert it to safetensors."
            )
        if path.name in ("config.json", "model.safetensors", "tokenizer.json"):
            return load_checkpoint(path.parent, device=device)
        raise ModelFormatError(
            f"{path} is not a model Tokenscope can open ({path.suffix or 'no extension'}); "
            f"{EXPECTED}."
        )
    return load_checkpoint(path, device=device)
