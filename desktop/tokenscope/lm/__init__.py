"""The Qt-free inference engine: configs, the Transformer, tokenizers, sampling, generation.

Nothing here imports Qt; the window and the command line are both clients of this package.
"""

from tokenscope.lm.config import PRESETS, ModelConfig, preset
from tokenscope.lm.distribution import NextTokenDistribution, TokenProbability
from tokenscope.lm.errors import (
    ContextTooLongError,
    ModelFormatError,
    ModelNotFoundError,
    TokenscopeError,
)
from tokenscope.lm.generation import Generation, GenerationStep
from tokenscope.lm.language_model import LanguageModel, TextScore, Token, TokenScore
from tokenscope.lm.loading import load_model
from tokenscope.lm.model import Transformer
from tokenscope.lm.sampling import GREEDY, SamplingSettings
from tokenscope.lm.tokenizer import Tokenizer

__all__ = [
    "GREEDY",
    "PRESETS",
    "ContextTooLongError",
    "Generation",
    "GenerationStep",
    "LanguageModel",
    "ModelConfig",
    "ModelFormatError",
    "ModelNotFoundError",
    "NextTokenDistribution",
    "SamplingSettings",
    "TextScore",
    "Token",
    "TokenProbability",
    "TokenScore",
    "Tokenizer",
    "TokenscopeError",
    "Transformer",
    "load_model",
    "preset",
]
