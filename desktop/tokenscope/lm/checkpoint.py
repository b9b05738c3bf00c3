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
import math
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tokenscope import __version__
from tokenscope.files import atomic_write, kind_of, shown
from tokenscope.lm.config import ModelConfig, model_name
from tokenscope.lm.errors import ModelFormatError
from tokenscope.lm.formats.safe_io import read_json_object, require_file, stat_path
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

#: Weights are floating point; anything else (integers, booleans) in a weights file is damage.
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_CONVERTIBLE = (torch.float64,)  # read, then stored as float32
#: No trained model holds a weight this large; a flipped exponent bit in a float32 file makes
#: values of ~1e38 that overflow to infinity in the first matrix product.
MAX_ABS_WEIGHT = 1e6
#: Rotary position tables (cos and sin for every position) are built from the config alone, so
#: their size is bounded by the weights (real models: a few % of them) or this floor.
_ROPE_BYTES_PER_ENTRY = 28  # float64 angles twice, float32 cos and sin, and the positions
_ROPE_TABLE_FLOOR = 256 << 20


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


def _listing(folder: Path) -> str:
    try:
        return ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
    except OSError:
        return "nothing readable"


def _require_folder(folder: Path) -> None:
    st = stat_path(folder)
    if st is None:
        raise ModelFormatError(f"{shown(folder)} does not exist; {EXPECTED}.")
    if not stat.S_ISDIR(st.st_mode):
        raise ModelFormatError(f"{shown(folder)} is {kind_of(st.st_mode)}; {EXPECTED}.")


def read_checkpoint_config(folder: Path) -> dict[str, Any]:
    """Read and check config.json; refuse foreign folders with a message saying what they are."""
    _require_folder(folder)
    path = folder / CONFIG_FILE
    if stat_path(path) is None:
        raise ModelFormatError(
            f"{folder} has no {CONFIG_FILE} (found: {_listing(folder)}); {EXPECTED}."
        )
    try:
        config = read_json_object(path, "a checkpoint's config (JSON)")
    except ModelFormatError as e:
        raise ModelFormatError(f"{e}; {EXPECTED}.") from None
    if config.get("format") != FORMAT:
        if "model_type" in config:
            raise ModelFormatError(
                f"{folder} is a Hugging Face model folder (model_type "
                f"{str(config['model_type'])[:40]!r}), not a Tokenscope checkpoint; {EXPECTED}."
            )
        raise ModelFormatError(
            f'{path} does not say "format": "{FORMAT}"; it is not a Tokenscope checkpoint.'
        )
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(
            f"{path} has format_version {repr(version)[:40]}; expected a whole number from 1 "
            f"to {FORMAT_VERSION}."
        )
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} has format_version {version!r}; this Tokenscope reads versions up to "
            f"{FORMAT_VERSION}. A newer Tokenscope wrote it: update Tokenscope to open it."
        )
    return config


def _check_weights_file(path: Path) -> None:
    if stat_path(path) is not None:
        require_file(path, f"the model's weights ({WEIGHTS_FILE})")
        return
    pickles = [p.name for p in path.parent.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise ModelFormatError(
            f"{path.parent} has {', '.join(pickles)} but no {WEIGHTS_FILE}. Pickle files are "
            "never loaded because opening one can run arbitrary code; convert them to safetensors."
        )
    raise ModelFormatError(f"{path.parent} has no {WEIGHTS_FILE}; {EXPECTED}.")


def _unreadable(path: Path, error: BaseException) -> ModelFormatError:
    reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error)
    return ModelFormatError(
        f"{path} is not a readable safetensors file ({reason}). It may be truncated or corrupt."
    )


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor in a safetensors file; nothing else is read."""
    require_file(path, "a safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {}
            names = f.keys()  # a safe_open handle is not itself iterable
            for key in names:
                piece = f.get_slice(key)
                header[key] = (str(piece.get_dtype()), tuple(piece.get_shape()))
            return header
    except ModelFormatError:
        raise
    except Exception as e:  # the library's own errors, OSError and whatever Rust reports
        raise _unreadable(path, e) from None
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # a Rust panic derives from BaseException
            raise
        raise _unreadable(path, e) from None


def _load_state(path: Path, device: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            names = f.keys()
            return {key: f.get_tensor(key) for key in names}
    except Exception as e:
        raise _unreadable(path, e) from None
    except BaseException as e:
        if type(e).__name__ != "PanicException":
            raise
        raise _unreadable(path, e) from None


def check_state_dict(model: Transformer, state: Mapping[str, Any], source: str | Path) -> None:
    """Check the names and shapes of `state` against a model built on the meta device.

    `state` maps names to tensors or to shapes (tuples); nothing is loaded.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes = {k: v if isinstance(v, tuple) else tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(
        f"{k} {shapes[k]} (expected {expected[k]})"
        for k in set(expected) & set(shapes)
        if shapes[k] != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}" + ("..." * (len(missing) > 5)))
    if unexpected:
        shown_names = ", ".join(name[:80] for name in unexpected[:5])
        problems.append(f"unexpected tensors: {shown_names}" + ("..." * (len(unexpected) > 5)))
    if wrong:
        problems.append(f"wrong shapes: {', '.join(wrong[:5])}" + ("..." * (len(wrong) > 5)))
    if problems:
        raise ModelFormatError(f"{source} does not match its config: " + "; ".join(problems))


def check_weight_dtypes(dtypes: Mapping[str, str], source: str | Path) -> None:
    """Refuse tensors that are not floating point (dtype names as safetensors gives them)."""
    allowed = {"F32", "F16", "BF16", "F64", *(str(d) for d in (*WEIGHT_DTYPES, *_CONVERTIBLE))}
    wrong = sorted(
        f"{name[:80]} ({dtype})" for name, dtype in dtypes.items() if dtype not in allowed
    )
    if wrong:
        raise ModelFormatError(
            f"{source} stores {', '.join(wrong[:4])}{'...' * (len(wrong) > 4)}; weights must be "
            "floating point (F32, F16 or BF16)"
        )


def check_weight_values(state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights that are not finite or far larger than any trained model holds."""
    for name, tensor in state.items():
        if tensor.numel() == 0:
            continue
        extremes = torch.aminmax(tensor.detach())
        low, high = float(extremes.min), float(extremes.max)
        if not (low >= -MAX_ABS_WEIGHT and high <= MAX_ABS_WEIGHT):  # NaN fails both
            bad = [v for v in (low, high) if not math.isfinite(v)]
            worst = bad[0] if bad else max(low, high, key=abs)
            raise ModelFormatError(
                f"{source}: tensor {name} holds {worst:g}; weights must be finite numbers of at "
                f"most {MAX_ABS_WEIGHT:g} in size. The file is damaged."
            )


def _uniform_dtype(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One floating dtype for all tensors: a mix (or float64) becomes float32."""
    dtypes = {t.dtype for t in state.values()}
    if len(dtypes) <= 1 and not dtypes & set(_CONVERTIBLE):
        return state
    return {k: v.float() for k, v in state.items()}


def check_position_tables(config: ModelConfig, weight_bytes: int, source: str | Path) -> None:
    """Refuse a rotary context length whose position tables would dwarf the weights."""
    if config.position != "rope":
        return
    need = config.context_length * config.head_dim * _ROPE_BYTES_PER_ENTRY
    allowed = max(_ROPE_TABLE_FLOOR, weight_bytes)
    if need > allowed:
        raise ModelFormatError(
            f"{source}: a context of {config.context_length:,} tokens needs "
            f"{need / 2**20:,.0f} MB of rotary position tables, more than the model's weights "
            f"({weight_bytes / 2**20:,.0f} MB); the context length is likely corrupt"
        )


def _check_outputs(transformer: Transformer, source: str | Path) -> None:
    """One forward pass over a few spread-out ids: damaged weights show up as NaN here."""
    c = transformer.config
    n = max(1, min(8, c.vocab_size, c.context_length))
    ids = torch.linspace(0, c.vocab_size - 1, n).long()[None].to(transformer.device)
    with torch.no_grad():
        logits = transformer(ids)
    if not bool(torch.isfinite(logits).all()):
        raise ModelFormatError(
            f"{source}: its weights give NaN or infinite scores on a test input; the file is "
            "damaged (or its numbers overflow in this precision)"
        )


def match_state_dict(
    model: Transformer, state: dict[str, torch.Tensor], source: str | Path
) -> None:
    """Load `state` into a model built on the meta device, after checking names and shapes."""
    check_state_dict(model, state, source)
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

    Checks on the way: names and shapes against the config, weight values (finite, sane),
    the size of the position tables, and one test forward pass. `info` goes to LanguageModel
    (name, add_bos, chat_template, ...). Problems are reported as ModelFormatError naming
    `source`.
    """
    from tokenscope.lm.language_model import LanguageModel

    report("placing the weights")
    check_state_dict(transformer, state, source)
    check_weight_dtypes({k: str(v.dtype) for k, v in state.items()}, source)
    check_weight_values(state, source)
    state = _uniform_dtype(state)
    weight_bytes = sum(t.numel() * t.element_size() for t in state.values())
    check_position_tables(transformer.config, weight_bytes, source)
    match_state_dict(transformer, state, source)
    if dtype is not None or device != "cpu":
        transformer.to(device=device, dtype=dtype)
    _check_outputs(transformer, source)
    # A model may have more output rows than its tokenizer has tokens (vocabularies padded
    # to a multiple of 64 or 128): those ids read as empty tokens instead of failing.
    tokenizer.reserve_ids(transformer.config.vocab_size)
    try:
        return LanguageModel(transformer, tokenizer, source=str(source), **info)
    except ValueError as e:
        raise ModelFormatError(f"{source}: {e}") from None


def _tokenizer_ids(meta: Any, path: Path) -> tuple[int | None, int | None]:
    if meta is None:
        return None, None
    if not isinstance(meta, dict):
        raise ModelFormatError(f'{path}: "tokenizer" must be an object with bos_id and eos_id')
    ids = []
    for key in ("bos_id", "eos_id"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ModelFormatError(
                f'{path}: "tokenizer.{key}" must be a token id or null (got {str(value)[:40]!r})'
            )
        ids.append(value)
    return ids[0], ids[1]


def load_checkpoint(folder: str | Path, *, device: str = "cpu") -> LanguageModel:
    """Load a native checkpoint folder written by save_checkpoint (or by training)."""
    from tokenscope.lm.formats.empty_model import empty_transformer

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    config_path = folder / CONFIG_FILE
    try:
        model_config = ModelConfig.from_dict(config.get("model"))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f'{config_path} has no valid "model" section: {e}') from None
    bos_id, eos_id = _tokenizer_ids(config.get("tokenizer"), config_path)
    add_bos = config.get("add_bos", False)
    if not isinstance(add_bos, bool):
        raise ModelFormatError(f'{config_path}: "add_bos" must be true or false')
    weights = folder / WEIGHTS_FILE
    _check_weights_file(weights)
    transformer = empty_transformer(model_config)
    header = read_safetensors_header(weights)
    check_weight_dtypes({k: dtype for k, (dtype, _) in header.items()}, weights)
    check_state_dict(transformer, {k: shape for k, (_, shape) in header.items()}, folder)
    report("reading the weights")
    state = _load_state(weights, device)
    tokenizer_path = folder / TOKENIZER_FILE
    if stat_path(tokenizer_path) is None:
        raise ModelFormatError(f"{folder} has no {TOKENIZER_FILE}; {EXPECTED}.")
    require_file(tokenizer_path, f"the tokenizer ({TOKENIZER_FILE})")
    report("building the tokenizer")
    try:
        tokenizer = Tokenizer.from_file(tokenizer_path, bos_id=bos_id, eos_id=eos_id)
    except ValueError as e:  # bos_id / eos_id that are not tokens of it
        raise ModelFormatError(f"{config_path}: {e}") from None
    return assemble_model(
        transformer,
        state,
        tokenizer,
        folder,
        name=model_name(config.get("name"), folder.name),
        add_bos=add_bos,
    )
