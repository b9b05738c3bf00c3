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

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from tokenscope.lm.checkpoint import (
    PICKLE_SUFFIXES,
    assemble_model,
    check_state_dict,
    check_weight_dtypes,
)
from tokenscope.lm.config import model_name
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.empty_model import empty_transformer
from tokenscope.lm.formats.safe_io import (
    is_regular_file,
    read_json_object,
    read_template,
    require_file,
    stat_path,
)
from tokenscope.lm.hf_config import config_from_hf
from tokenscope.lm.hf_names import RULES, convert_state_dict, plan_shapes
from tokenscope.lm.language_model import LanguageModel
from tokenscope.lm.progress import report
from tokenscope.lm.tokenizer import Tokenizer

WEIGHTS, INDEX, TOKENIZER = "model.safetensors", "model.safetensors.index.json", "tokenizer.json"


def read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    """A JSON object from `path`; {} for a missing optional file; ModelFormatError otherwise."""
    if stat_path(path) is None:
        if required:
            raise ModelFormatError(f"{path.parent} has no {path.name}")
        return {}
    return read_json_object(path, f"a JSON object ({path.name})")


def is_hf_folder(folder: Path) -> bool:
    """Whether a folder's config.json is a Hugging Face one (it names a model_type)."""
    if not is_regular_file(folder / "config.json"):
        return False
    try:
        return "model_type" in read_json(folder / "config.json")
    except ModelFormatError:
        return False


def _pickles(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    except OSError:
        return []


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files holding the weights, refusing pickles and foreign paths."""
    if stat_path(folder / WEIGHTS) is not None:
        require_file(folder / WEIGHTS, "the model's weights (safetensors)")
        return [folder / WEIGHTS]
    if stat_path(folder / INDEX) is not None:
        weight_map = read_json(folder / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFormatError(f"{folder / INDEX} has no weight_map")
        files = []
        for name in sorted(set(map(str, weight_map.values()))):
            # Shard names come from the file: never let one point outside the folder.
            if Path(name).name != name or not name.endswith(".safetensors"):
                raise ModelFormatError(
                    f"{folder / INDEX} names a shard {name[:80]!r} outside the folder"
                )
            if stat_path(folder / name) is None:
                raise ModelFormatError(f"{folder} lacks the shard {name} listed in {INDEX}")
            require_file(folder / name, f"a shard of the weights listed in {INDEX}")
            files.append(folder / name)
        return files
    loose = sorted(folder.glob("*.safetensors"))
    if len(loose) == 1:
        require_file(loose[0], "the model's weights (safetensors)")
        return loose
    pickles = _pickles(folder)
    if pickles:
        raise ModelFormatError(
            f"{folder} has {', '.join(pickles)} but no {WEIGHTS}. Pickle files are never loaded "
            "because opening one can run arbitrary code; convert them to safetensors."
        )
    raise ModelFormatError(f"{folder} is a Hugging Face model folder without weights ({WEIGHTS})")


def _library_error(path: Path, error: BaseException) -> ModelFormatError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return ModelFormatError(
        f"{path} is not a readable safetensors file ({reason}). It may be truncated or corrupt."
    )


class _SafetensorsTensors(Mapping[str, torch.Tensor]):
    """Tensors of several safetensors files by name, read only when looked up.

    GPT-2 files on the Hub name tensors without the "transformer." prefix its model class
    uses; both spellings are accepted.
    """

    def __init__(self, files: list[Path], stack: ExitStack) -> None:
        self._where: dict[str, tuple[Any, str, Path]] = {}
        self._header: dict[tuple[int, str], tuple[str, tuple[int, ...]]] = {}
        for path in files:
            try:
                handle = stack.enter_context(safe_open(str(path), framework="pt"))
                keys = list(handle.keys())
                for key in keys:
                    piece = handle.get_slice(key)
                    self._header[id(handle), key] = (
                        str(piece.get_dtype()),
                        tuple(piece.get_shape()),
                    )
            except Exception as e:  # the library's errors, OSError, whatever Rust reports
                raise _library_error(path, e) from None
            except BaseException as e:
                if type(e).__name__ != "PanicException":
                    raise
                raise _library_error(path, e) from None
            for key in keys:
                self._where[key] = (handle, key, path)
                if not key.startswith(("transformer.", "model.", "lm_head.")):
                    self._where.setdefault(f"transformer.{key}", (handle, key, path))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor's stored shape, by name; nothing is read."""
        return {name: self._header[id(h), key][1] for name, (h, key, _) in self._where.items()}

    def check_dtypes(self, names: set[str]) -> None:
        """Refuse any of these tensors that is not floating point, naming its file."""
        for name in sorted(names):
            handle, key, path = self._where[name]
            check_weight_dtypes({key: self._header[id(handle), key][0]}, path)

    def __getitem__(self, name: str) -> torch.Tensor:
        handle, key, path = self._where[name]
        try:
            tensor: torch.Tensor = handle.get_tensor(key).float()
            return tensor
        except Exception as e:
            raise ModelFormatError(
                f"{path}: tensor {key!r} cannot be read ({_first_line(e)})"
            ) from None

    def dtypes(self) -> set[str]:
        return {dtype for dtype, _ in self._header.values()}

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
        named = {str(t.get("name")): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str):
        return template
    jinja = folder / "chat_template.jinja"
    return read_template(jinja) if stat_path(jinja) is not None else None


def _adds_bos(tokenizer: Tokenizer, bos: int | None, folder: Path) -> bool:
    """Whether the tokenizer's post-processor starts every input with BOS (Llama-style)."""
    if bos is None:
        return False
    try:
        probe = tokenizer.backend.encode("a", add_special_tokens=True).ids
    except Exception as e:
        raise ModelFormatError(f"{folder / TOKENIZER}: its post-processor fails ({e})") from None
    except BaseException as e:
        if type(e).__name__ != "PanicException":
            raise
        raise ModelFormatError(f"{folder / TOKENIZER}: its post-processor fails ({e})") from None
    return bool(probe) and probe[0] == bos


def load_hf_folder(
    folder: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None
) -> LanguageModel:
    """A LanguageModel from a Hugging Face folder; float32 weights unless `dtype` is given."""
    folder = Path(folder)
    config_path = folder / "config.json"
    hf = read_json(config_path)
    model_type = hf.get("model_type")
    if not isinstance(model_type, str) or model_type not in RULES:
        try:
            config_from_hf(hf)  # raises, naming the architecture and the supported ones
        except ModelFormatError as e:
            raise ModelFormatError(f"{config_path}: {e}") from None
    assert isinstance(model_type, str)  # config_from_hf refuses a missing model_type
    files = weight_files(folder)
    if stat_path(folder / TOKENIZER) is None:
        others = [n for n in ("tokenizer.model", "vocab.json") if stat_path(folder / n)]
        hint = f" ({' and '.join(others)} alone cannot be read)" if others else ""
        raise ModelFormatError(f"{folder} has weights but no {TOKENIZER}{hint}")
    try:
        config = config_from_hf(hf, name=model_name(folder.name, "model"))
    except ModelFormatError as e:  # its messages say "config.json: ..."
        raise ModelFormatError(f"{folder}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"{config_path} is incomplete or invalid: {e}") from None
    require_file(folder / TOKENIZER, f"the tokenizer ({TOKENIZER})")
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
        add_bos = _adds_bos(tokenizer, bos, folder)
    transformer = empty_transformer(config)
    targets = set(transformer.state_dict())
    with ExitStack() as stack:
        source = _SafetensorsTensors(files, stack)
        stored = source.dtypes()
        # Shapes and dtypes first: weights that do not fit config.json are refused before a
        # single tensor is read.
        try:
            plan, used = plan_shapes(source.shapes(), RULES[model_type], config, targets)
        except ModelFormatError as e:
            raise ModelFormatError(f"{folder}: {e}") from None
        check_state_dict(transformer, plan, folder)
        source.check_dtypes(used)
        state = convert_state_dict(source, model_type, config, targets)
    return assemble_model(
        transformer,
        state,
        tokenizer,
        folder,
        device=device,
        dtype=dtype,
        name=model_name(folder.name, "model"),
        add_bos=add_bos,
        chat_template=_chat_template(folder, tok_config),
        architecture=model_type,
        quantization="/".join(sorted(d.replace("torch.", "") for d in stored)) or None,
    )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
