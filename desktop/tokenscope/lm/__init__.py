"""The Qt-free inference engine: configs, the Transformer, tokenizers, sampling, generation.

Nothing here imports Qt; the window and the command line are both clients of this package.
The names below are imported on first use, so that `tokenscope.lm.registry` or
`tokenscope.lm.errors` can be read without importing torch (the window starts faster).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Capabilities": "backend",
    "ModelBackend": "backend",
    "open_model": "backend",
    "PRESETS": "config",
    "ModelConfig": "config",
    "preset": "config",
    "NextTokenDistribution": "distribution",
    "ModelFormatError": "errors",
    "ModelNotFoundError": "errors",
    "TokenscopeError": "errors",
    "Generation": "generation",
    "LanguageModel": "language_model",
    "ContinuationScore": "tokens",
    "GenerationStep": "tokens",
    "Token": "tokens",
    "TokenProbability": "tokens",
    "load_model": "loading",
    "Transformer": "model",
    "GREEDY": "sampling",
    "SamplingSettings": "sampling",
    "Tokenizer": "tokenizer",
}

__all__ = [
    "GREEDY",
    "PRESETS",
    "Capabilities",
    "ContinuationScore",
    "Generation",
    "GenerationStep",
    "LanguageModel",
    "ModelBackend",
    "ModelConfig",
    "ModelFormatError",
    "ModelNotFoundError",
    "NextTokenDistribution",
    "SamplingSettings",
    "Token",
    "TokenProbability",
    "Tokenizer",
    "TokenscopeError",
    "Transformer",
    "load_model",
    "open_model",
    "preset",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tokenscope.lm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tokenscope.lm.{_WHERE[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from tokenscope.lm.backend import Capabilities, ModelBackend, open_model
    from tokenscope.lm.config import PRESETS, ModelConfig, preset
    from tokenscope.lm.distribution import NextTokenDistribution
    from tokenscope.lm.errors import (
        ModelFormatError,
        ModelNotFoundError,
        TokenscopeError,
    )
    from tokenscope.lm.generation import Generation
    from tokenscope.lm.language_model import LanguageModel
    from tokenscope.lm.loading import load_model
    from tokenscope.lm.model import Transformer
    from tokenscope.lm.sampling import GREEDY, SamplingSettings
    from tokenscope.lm.tokenizer import Tokenizer
    from tokenscope.lm.tokens import ContinuationScore, GenerationStep, Token, TokenProbability
