"""Our Transformer with no values at all, ready to be filled from a file.

Built on the meta device, as the native loader does, but also without running the
parameter initialisers: the first `normal_` on a meta tensor imports sympy and torch's
reference decompositions, about 1 s of a 2 s load, for values that are thrown away.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from tokenscope.lm.config import ModelConfig
from tokenscope.lm.model import Transformer

_INITIALISERS = frozenset(
    {
        torch.nn.init.normal_,
        torch.nn.init.uniform_,
        torch.nn.init.ones_,
        torch.nn.init.zeros_,
        torch.nn.init.kaiming_uniform_,
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
    }
)


class _SkipInitialisers(TorchFunctionMode):
    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if func in _INITIALISERS:
            return args[0] if args else (kwargs or {}).get("tensor")
        return func(*args, **(kwargs or {}))


def empty_transformer(config: ModelConfig) -> Transformer:
    """A Transformer on the meta device whose parameters are to be assigned by the caller."""
    with torch.device("meta"), _SkipInitialisers():
        return Transformer(config)
