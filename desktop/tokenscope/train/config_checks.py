"""Every field of a training config checked for type and range, before anything runs.

A config comes from a JSON file, `--set KEY=JSON` on the command line, or the window's Training
tab, so any field may hold anything: a string where a number belongs, 0 where a count divides,
10^9 where a size allocates. Each check returns problems as sentences that name the field and
the allowed values, e.g. "grad_accum must be a whole number in [1, 65536] (got 0)".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokenscope.lm import config as lm_config
from tokenscope.lm.probe import Probe

if TYPE_CHECKING:
    from tokenscope.train.config import TrainConfig

# Upper bounds well above any model this app trains, low enough that nothing absurd is
# allocated on the way to the memory check (a vocabulary of 10^9 aborts the Rust tokenizer).
MAX_VOCAB = 1 << 20
MAX_CONTEXT = 1 << 20
MAX_BATCH = 1 << 16
# The model's shape: the engine's own bounds for any model config (one place to change them).
MAX_LAYERS = lm_config.MAX_LAYERS
MAX_HEADS = lm_config.MAX_HEADS
MAX_WIDTH = lm_config.MAX_D_MODEL
MAX_FFN = lm_config.MAX_D_FF
MAX_STEPS = 10**9
MAX_EVERY = 10**9
MAX_THREADS = 1024
MAX_SEED = 2**32 - 1
MAX_SAMPLE_TOKENS = 4096
MAX_TEXT = 100_000  # characters in a sample prompt or a probe
MAX_NAME = 200

STRATEGIES = ("ddp", "fsdp")  # data parallel, or fully sharded data parallel (FSDP2)
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|(cuda|xpu)(:\d{1,3})?)")
DEVICE_TEXT = "auto, cpu, mps, cuda or cuda:N"
ROPE_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_context_length")


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(name: str, value: Any, low: int, high: int, *, none_ok: bool = False) -> list[str]:
    """`value` must be an int in [low, high] (or None when allowed)."""
    if value is None and none_ok:
        return []
    if not is_int(value) or not low <= value <= high:
        also = " or null" if none_ok else ""
        return [f"{name} must be a whole number in [{low}, {high}]{also} (got {_got(value)})"]
    return []


def number(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> list[str]:
    """`value` must be a finite int or float within the interval (open or closed ends)."""
    ok = is_number(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open or high == math.inf else "]"
        top = "inf" if high == math.inf else f"{high:g}"
        return [f"{name} must be a number in {left}{low:g}, {top}{right} (got {_got(value)})"]
    return []


def choice(name: str, value: Any, allowed: Sequence[Any]) -> list[str]:
    if not any(value == a and type(value) is type(a) for a in allowed):
        names = ", ".join(repr(a) for a in allowed)
        return [f"{name} must be one of {names} (got {_got(value)})"]
    return []


def text(name: str, value: Any, *, max_chars: int, empty_ok: bool = True) -> list[str]:
    if not isinstance(value, str) or len(value) > max_chars or (not value and not empty_ok):
        what = "a text" if empty_ok else "a non-empty text"
        return [f"{name} must be {what} of at most {max_chars} characters (got {_got(value)})"]
    return []


def flag(name: str, value: Any) -> list[str]:
    if not isinstance(value, bool):
        return [f"{name} must be true or false (got {_got(value)})"]
    return []


def texts(name: str, value: Any, *, max_chars: int, empty_ok: bool) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return [f"{name} must be a list of texts (got {_got(value)})"]
    problems: list[str] = []
    for i, item in enumerate(value):
        problems += text(f"{name}[{i}]", item, max_chars=max_chars, empty_ok=empty_ok)
    return problems


# ----- the model overrides (`model`: ModelConfig fields) -------------------------------------


def _rope_scaling(value: Any) -> list[str]:
    name = "model.rope_scaling"
    if value is None:
        return []
    if not isinstance(value, dict) or sorted(value) != sorted(ROPE_SCALING_KEYS):
        return [f"{name} must be null or an object with {', '.join(ROPE_SCALING_KEYS)} "
                f"(got {_got(value)})"]  # fmt: skip
    problems: list[str] = []
    for key in ROPE_SCALING_KEYS:
        problems += number(f"{name}.{key}", value[key], 0.0, low_open=True)
    if not problems and value["high_freq_factor"] <= value["low_freq_factor"]:
        problems.append(f"{name}.high_freq_factor must be above low_freq_factor")
    return problems


def model_problems(model: Any) -> list[str]:
    """Problems with the `model` overrides: unknown keys, wrong types, values out of range."""
    if not isinstance(model, dict):
        return [f"model must be an object of model settings (got {_got(model)})"]
    checks = {
        "context_length": lambda v: whole("model.context_length", v, 1, MAX_CONTEXT),
        "n_layer": lambda v: whole("model.n_layer", v, 1, MAX_LAYERS),
        "n_head": lambda v: whole("model.n_head", v, 1, MAX_HEADS),
        "n_kv_head": lambda v: whole("model.n_kv_head", v, 1, MAX_HEADS, none_ok=True),
        "d_model": lambda v: whole("model.d_model", v, 1, MAX_WIDTH),
        "d_ff": lambda v: whole("model.d_ff", v, 1, MAX_FFN, none_ok=True),
        "position": lambda v: choice("model.position", v, ("learned", "rope")),
        "norm": lambda v: choice("model.norm", v, ("layernorm", "rmsnorm")),
        "mlp": lambda v: choice("model.mlp", v, ("gelu", "swiglu", "none")),
        "gelu_approximate": lambda v: choice("model.gelu_approximate", v, ("tanh", "none")),
        "norm_eps": lambda v: number("model.norm_eps", v, 0.0, 1.0, low_open=True),
        "rope_base": lambda v: number("model.rope_base", v, 1.0, low_open=True),
        "rope_scaling": _rope_scaling,
        "qkv_bias": lambda v: flag("model.qkv_bias", v),
        "out_bias": lambda v: flag("model.out_bias", v),
        "tie_embeddings": lambda v: flag("model.tie_embeddings", v),
        "dropout": lambda v: number("model.dropout", v, 0.0, 1.0, high_open=True),
        "name": lambda v: text("model.name", v, max_chars=MAX_NAME),
    }
    problems: list[str] = []
    for key, value in model.items():
        if key == "vocab_size":
            problems.append("model.vocab_size is set by the tokenizer: use vocab_size instead")
        elif key not in checks:
            problems.append(
                f"model has no setting {_got(key)} (known: {', '.join(sorted(checks))})"
            )
        else:
            problems += checks[key](value)
    return problems


# ----- the whole config ----------------------------------------------------------------------


def field_problems(c: TrainConfig, presets: Sequence[str]) -> list[str]:
    """Type and range problems of every TrainConfig field (`c`), each naming its field."""
    p: list[str] = []
    if not isinstance(c.data, tuple) or not all(isinstance(x, str) and x for x in c.data):
        p.append(f"data must be a list of file or folder paths (got {_got(c.data)})")
    p += text("out_dir", c.out_dir, max_chars=4096, empty_ok=False)
    if c.corpus_recipe is not None:
        p += choice("corpus_recipe", c.corpus_recipe, ("default", "induction"))
    p += choice("tokenizer", c.tokenizer, ("char", "bpe", "model"))
    p += whole("vocab_size", c.vocab_size, 2, MAX_VOCAB)
    p += choice("preset", c.preset, tuple(presets))
    p += model_problems(c.model)
    if c.init_from is not None:
        p += text("init_from", c.init_from, max_chars=4096, empty_ok=False)
    p += whole("steps", c.steps, 1, MAX_STEPS)
    p += whole("batch_size", c.batch_size, 1, MAX_BATCH)
    p += whole("grad_accum", c.grad_accum, 1, MAX_BATCH)
    p += whole("context", c.context, 1, MAX_CONTEXT, none_ok=True)
    p += number("learning_rate", c.learning_rate, 0.0, low_open=True)
    p += number("min_learning_rate", c.min_learning_rate, 0.0)
    p += whole("warmup_steps", c.warmup_steps, 0, MAX_STEPS)
    p += number("weight_decay", c.weight_decay, 0.0)
    p += number("beta1", c.beta1, 0.0, 1.0, high_open=True)
    p += number("beta2", c.beta2, 0.0, 1.0, high_open=True)
    p += number("grad_clip", c.grad_clip, 0.0, low_open=True)
    p += number("dropout", c.dropout, 0.0, 1.0, high_open=True)
    p += choice("precision", c.precision, ("auto", "fp32", "bf16", "fp16"))
    if not isinstance(c.device, str) or not DEVICE_PATTERN.fullmatch(c.device):
        p.append(f"device must be one of {DEVICE_TEXT} (got {_got(c.device)})")
    p += choice("strategy", c.strategy, STRATEGIES)
    p += whole("threads", c.threads, 1, MAX_THREADS, none_ok=True)
    p += flag("compile", c.compile)
    p += whole("seed", c.seed, 0, MAX_SEED)
    p += number("val_fraction", c.val_fraction, 0.0, 0.5, low_open=True, high_open=True)
    for name in ("log_every", "eval_every", "eval_batches", "sample_every", "checkpoint_every"):
        p += whole(name, getattr(c, name), 1, MAX_EVERY)
    p += texts("sample_prompts", c.sample_prompts, max_chars=MAX_TEXT, empty_ok=True)
    p += whole("sample_tokens", c.sample_tokens, 1, MAX_SAMPLE_TOKENS)
    p += whole("keep_checkpoints", c.keep_checkpoints, 0, 10**6)
    p += whole("max_bad_steps", c.max_bad_steps, 1, 10**6)
    p += text("name", c.name, max_chars=MAX_NAME, empty_ok=False)
    return p


def probe_problems(probes: Any) -> list[str]:
    """`probes` as read from JSON: a list of {"prompt": text, "continuation": non-empty text}."""
    if not isinstance(probes, (list, tuple)):
        return [f"probes must be a list of {{prompt, continuation}} objects (got {_got(probes)})"]
    problems: list[str] = []
    for i, probe in enumerate(probes):
        if isinstance(probe, Probe):
            probe = {"prompt": probe.prompt, "continuation": probe.continuation}
        if not isinstance(probe, dict) or sorted(probe) != ["continuation", "prompt"]:
            problems.append(f"probes[{i}] must be an object with exactly prompt and "
                            f"continuation (got {_got(probe)})")  # fmt: skip
            continue
        problems += text(f"probes[{i}].prompt", probe["prompt"], max_chars=MAX_TEXT)
        problems += text(
            f"probes[{i}].continuation", probe["continuation"], max_chars=MAX_TEXT, empty_ok=False
        )
    return problems
