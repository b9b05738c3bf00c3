"""Chat templates: the Jinja text a model file carries to lay out a conversation.

Templates come from model files, so they are rendered in Jinja's immutable sandbox: a
template can format text but cannot reach Python objects, files or the network.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tokenscope.lm.errors import ModelFormatError


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # trim_blocks / lstrip_blocks: the settings the templates are written for (as in
    # Hugging Face's apply_chat_template), so that "{% ... %}" lines leave no blank lines.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise ModelFormatError(f"the chat template refused the conversation: {message}")

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except TemplateError as e:
        raise ModelFormatError(f"the model's chat template is not valid Jinja: {e}") from None


def render_chat(
    template: str,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The text of `messages` laid out by `template`, ready for the assistant's reply."""
    from jinja2 import TemplateError

    try:
        return _compile(template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except TemplateError as e:
        raise ModelFormatError(f"the model's chat template failed: {e}") from None
