"""Tokenscope: look inside language models.

    import tokenscope
    model = tokenscope.load_model("path/to/checkpoint")
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    model.get_most_likely_token(dist)

Importing this package is cheap: torch is imported only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel


def load_model(
    name_or_path: str = "builtin", *, device: str = "cpu", dtype: str | None = None
) -> LanguageModel:
    """Load a model by name ("builtin", "smollm2-135m") or from a folder or .gguf file.

    See :func:`tokenscope.lm.loading.load_model` for the names, formats and dtypes understood.
    """
    from tokenscope.lm.loading import load_model as _load

    return _load(name_or_path, device=device, dtype=dtype)


__all__ = ["__version__", "load_model"]
