"""Errors the engine raises for bad input; each message says what was expected."""

from __future__ import annotations


class TokenscopeError(Exception):
    """Base class for errors a person should read (shown as-is by the CLI and the window)."""


class ModelFormatError(TokenscopeError):
    """A model or tokenizer file is missing, corrupt, foreign or unsafe to load."""


class ModelNotFoundError(TokenscopeError):
    """A model name or path does not lead to any model."""
