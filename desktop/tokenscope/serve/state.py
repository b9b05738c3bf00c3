"""What one app serves: the model, the lock around it, and the limits its requests meet."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_LOGPROBS = 20


@dataclass(frozen=True)
class Served:
    """The model behind an app (kept in `app.state.served`; endpoints get it as a dependency).

    The model is not thread-safe and endpoints run in FastAPI's thread pool, so every call into
    it (tokenizing included) holds `lock`."""

    model: Any  # a tokenscope LanguageModel
    name: str
    max_logprobs: int = DEFAULT_MAX_LOGPROBS
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Counted once here: the listing is answered on the event loop, which must not walk
    # the weights.
    parameters: int = 0

    @classmethod
    def of(cls, model: Any, name: str, max_logprobs: int = DEFAULT_MAX_LOGPROBS) -> Served:
        """`model` served as `name`, its sizes read once."""
        return cls(model, name, max_logprobs, parameters=model.parameter_count)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def window(self) -> int:
        """The context length: the most tokens a prompt plus its completion may hold."""
        return self.model.config.context_length

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size
