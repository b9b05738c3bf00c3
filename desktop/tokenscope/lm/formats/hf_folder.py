"""Load a Hugging Face model folder: config.json, *.safetensors (sharded too), tokenizer.json.

    config.json                      model_type and shape; mapped by tokenscope.lm.hf_names
    model.safetensors                the weights, or shards listed in
    model.safetensors.index.json     {"weight_map": {tensor name: shard file}}
    tokenizer.json                   the `tokenizers` file
    tokenizer_config.json            optional: BOS/EOS, add_bos_token, the chat template
    generation_config.json           optional: BOS/EOS ids
    chat_template.jinja              optional: the chat template in its own file

Only safetensors is read; pickled weights (pytorch_model.bin) are refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from tokenscope.lm.checkpoint import PICKLE_SUFFIXES, assemble_model
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.empty_model import empty_transformer
from tokenscope.lm.hf_names import RULES, config_from_hf, convert_state_dict
from tokenscope.lm.language_model import LanguageModel
from tokenscope.lm.progress import report
from tokenscope.lm.tokenizer import Tokenizer

WEIGHTS, INDEX, TOKENIZER = "model.safetensors", "model.safetensors.index.json", "tokenizer.json"


def read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    """A JSON object from `path`; {} for a missing optional file; ModelFormatError otherwise."""
    if not path.is_file():
        if required:
            raise ModelFormatError(f"{path.parent} has no {path.name}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} holds {type(data).__name__}, not a JSON object")
    return data


def is_hf_folder(folder: Path) -> bool:
    """Whether a folder's config.json is a Hugging Face one (it names a model_type)."""
    try:
        return "model_type" in read_json(folder / "config.json")
    except ModelFormatError:
        return False


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files holding the weights, refusing pickles and foreign paths."""
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if (folder / INDEX).is_file():
        weight_map = read_json(folder / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFormatError(f"{folder / INDEX} has no weight_map")
        files = []
        for name in sorted(set(map(str, weight_map.values()))):
            # Shard names come from the file: never let one point outside the folder.
            if Path(name).name != name or not name.endswith(".safetensors"):
                raise ModelFormatError(
                    f"{folder / INDEX} names a shard {name!r} outside the folder"
                )
            if not (folder / name).is_file():
                raise ModelFormatError(f"{folder} lacks the shard {name} listed in {INDEX}")
            files.append(folder / name)
        return files
    loose = sorted(folder.glob("*.safetensors"))
    if len(loose) == 1:
        return loose
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelFormatError(
            f"{folder} has {', '.join(pickles)} but no {WEIGHTS}. Pickle files are never loaded "
            "because opening one can run arbitrary code; convert them to safetensors."
        )
    raise ModelFormatError(f"{folder} is a Hugging Face model folder without weights ({WEIGHTS})")


class _SafetensorsTensors(Mapping[str, torch.Tensor]):
    """Tensors of several safetensors files by name, read only when looked up.

    GPT-2 files on the Hub name tensors without the "transformer." prefix its model class
    uses; both spellings are accepted.
    """

    def __init__(self, files: list[Path], stack: ExitStack) -> None:
        self._where: dict[str, tuple[Any, str]] = {}
        for path in files:
            try:
                handle = stack.enter_context(safe_open(str(path), framework="pt"))
                keys = list(handle.keys())
            except (SafetensorError, OSError, ValueError) as e:
                raise ModelFormatError(
                    f"{path} is not a readable safetensors file ({e}). It may be truncated or "
                    "corrupt."
                ) from None
            for key in keys:
                self._where[key] = (handle, key)
                if not key.startswith(("transformer.", "model.", "lm_head.")):
                    self._where.setdefault(f"transformer.{key}", (handle, key))

    def __getitem__(self, name: str) -> torch.Tensor:
        handle, key = self._where[name]
        try:
            return handle.get_tensor(key).float()
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ModelFormatError(f"tensor {key!r} cannot be read ({e})") from None

    def dtypes(self) -> set[str]:
        return {str(h.get_slice(k).get_dtype()) for h, k in self._where.values()}

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def _special_id(tokenizer_json: Tokenizer, *values: Any) -> int | None:
    """The first usable id among config values: ints, lists of ints or token strings."""
    for value in values:
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and tokenizer_json.id_to_token(value) is not None:
            return value
        if isinstance(value, str):
            found = tokenizer_json.backend.token_to_id(value)
            if found is not None:
                return found
    return None


def _chat_template(folder: Path, tok_config: Mapping[str, Any]) -> str | None:
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str):
        return template
    jinja = folder / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None


def load_hf_folder(
    folder: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None
) -> LanguageModel:
    """A LanguageModel from a Hugging Face folder; float32 weights unless `dtype` is given."""
    folder = Path(folder)
    hf = read_json(folder / "config.json")
    model_type = str(hf.get("model_type"))
    if model_type not in RULES:
        config_from_hf(hf)  # raises, naming the architecture and the supported ones
    files = weight_files(folder)
    if not (folder / TOKENIZER).is_file():
        others = [n for n in ("tokenizer.model", "vocab.json") if (folder / n).is_file()]
        hint = f" ({' and '.join(others)} alone cannot be read)" if others else ""
        raise ModelFormatError(f"{folder} has weights but no {TOKENIZER}{hint}")
    try:
        config = config_from_hf(hf, name=folder.name)
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(
            f"{folder / 'config.json'} is incomplete or invalid: {e!r}"
        ) from None
    report("building the tokenizer")
    tokenizer = Tokenizer.from_file(folder / TOKENIZER)
    tok_config = read_json(folder / "tokenizer_config.json", required=False)
    gen_config = read_json(folder / "generation_config.json", required=False)
    bos = _special_id(tokenizer, tok_config.get("bos_token"), gen_config.get("bos_token_id"),
                      hf.get("bos_token_id"))  # fmt: skip
    eos = _special_id(tokenizer, tok_config.get("eos_token"), gen_config.get("eos_token_id"),
                      hf.get("eos_token_id"))  # fmt: skip
    tokenizer = Tokenizer(tokenizer.backend, bos_id=bos, eos_id=eos)
    add_bos = tok_config.get("add_bos_token")
    if not isinstance(add_bos, bool):
        # Llama-style tokenizer.json files add BOS in their post-processor.
        probe = tokenizer.backend.encode("a", add_special_tokens=True).ids
        add_bos = bos is not None and bool(probe) and probe[0] == bos
    transformer = empty_transformer(config)
    with ExitStack() as stack:
        source = _SafetensorsTensors(files, stack)
        stored = source.dtypes()
        state = convert_state_dict(source, model_type, config, set(transformer.state_dict()))
    return assemble_model(
        transformer,
        state,
        tokenizer,
        folder,
        device=device,
        dtype=dtype,
        name=folder.name,
        add_bos=add_bos,
        chat_template=_chat_template(folder, tok_config),
        architecture=model_type,
        quantization="/".join(sorted(d.replace("torch.", "") for d in stored)) or None,
    )
