"""Chat templates: the Jinja text a model file carries to lay out a conversation.

Templates come from model files, so they are rendered in Jinja's immutable sandbox: a
template can format text but cannot reach Python objects, files or the network. The sandbox
does not bound work, so this module does, for each render:

- time: a deadline checked on every line of template code, every call and every attribute
  access (loops included), so `{% for %}` inside `{% for %}` cannot run for hours;
- size: every string, list or number a template builds is checked *before* it is built
  (`"x" * 3000000000`, `s.replace("", big)`, `"{:>999999999}".format(x)`, repeated
  doubling in a namespace), and the output is counted as it streams;
- recursion: a macro calling itself ends in a clean error.

Every failure is a ModelFormatError: the template belongs to the model file.
"""

from __future__ import annotations

import contextvars
import functools
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

from tokenscope.lm.errors import ModelFormatError

#: A real chat template renders in well under a millisecond.
MAX_RENDER_SECONDS = 2.0
#: Output (and any one string or list built on the way): this many characters, or 8 times
#: the conversation's length when that is more.
MIN_OUTPUT_CHARS = 1 << 20
#: Numbers handed to calls and filters (widths, counts): Jinja's own range limit.
MAX_NUMBER_ARGUMENT = 100_000
#: Integers a template computes (2 ** n, repeated squaring).
MAX_INT_BITS = 1 << 16
#: Templates longer than this are not chat templates (real ones are a few KB).
MAX_TEMPLATE_CHARS = 1 << 20
MAX_JSON_INDENT = 16

_TEMPLATE_FILE = "<template>"  # the code filename Jinja gives templates made from strings
_DIGITS = re.compile(r"\d+")


class _Budget:
    """The limits of one render: a deadline and a size for anything built."""

    def __init__(self, max_chars: int) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.max_chars = max_chars
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 64 == 0 and time.monotonic() > self.deadline:
            _refuse(f"it ran longer than {MAX_RENDER_SECONDS:g} s")

    def size(self, n: int, what: str) -> None:
        if n > self.max_chars:
            _refuse(f"{what} would be {n:,} items long (the limit is {self.max_chars:,})")


_current: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "chat_template_budget", default=None
)


def _budget() -> _Budget:
    budget = _current.get()
    if budget is None:  # compile-time constant folding outside any render
        budget = _Budget(MIN_OUTPUT_CHARS)
    return budget


def _refuse(reason: str) -> None:
    from jinja2.sandbox import SecurityError

    raise SecurityError(f"the template was stopped: {reason}")


def _size(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, set, frozenset, bytes)):
        return len(value)
    return 1


def _numbers(values: Iterable[Any]) -> int:
    """The largest number among `values` (0 if none), refusing absurd ones."""
    largest = 0
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not abs(value) <= MAX_NUMBER_ARGUMENT:  # NaN too
            _refuse(f"the number {value!r} is beyond {MAX_NUMBER_ARGUMENT:,}")
        largest = max(largest, int(abs(value)))
    return largest


def _format_widths(fmt: str) -> int:
    """The widest width or precision written into a format string ("%8.3f", "{:>20}").

    Refuses absurd ones ("%999999999d"); counts every number in the string, which is more
    than the widths, so the estimate stays an upper bound.
    """
    widest = 0
    for digits in _DIGITS.findall(fmt):
        if len(digits) > 6 or int(digits) > MAX_NUMBER_ARGUMENT:
            _refuse(f"the format string asks for a width of {digits[:20]}")
        widest = max(widest, int(digits))
    return widest


def _joined_size(separator: str, items: Any) -> int:
    items = list(items) if not isinstance(items, (list, tuple, str)) else items
    _budget().size(len(items), "a joined list")
    return len(separator) * max(0, len(items) - 1) + sum(len(str(item)) for item in items)


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    hits = text.count(old)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _formatted_size(fmt: str, values: Iterable[Any]) -> int:
    widest = _format_widths(fmt)
    biggest = max((len(str(v)) for v in values), default=0)
    return len(fmt) + (fmt.count("{") + fmt.count("%")) * (biggest + widest)


def _method_size(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The size a str method's result can reach, for those that multiply sizes."""
    # The sandbox hands out str.format wrapped (functools.update_wrapper keeps __wrapped__).
    owner = getattr(method, "__self__", None)
    if owner is None:
        owner = getattr(getattr(method, "__wrapped__", None), "__self__", None)
    if not isinstance(owner, str):
        return None
    name = getattr(method, "__name__", "")
    if name == "join" and args:
        return _joined_size(owner, args[0])
    if name == "replace" and len(args) >= 2:
        return _replaced_size(owner, *args[:3])
    if name in ("format", "format_map"):
        values = [*args, *kwargs.values()]
        if name == "format_map" and args and isinstance(args[0], dict):
            values = list(args[0].values())
        return _formatted_size(owner, values)
    if name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        return len(owner) + owner.count("\t") * (tab if isinstance(tab, int) else 8)
    return None


def _check_call(
    name: str, value_first: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Refuse a call or filter whose arguments could build something beyond the budget."""
    budget = _budget()
    budget.tick()
    plain = [a for a in args if not _is_jinja_context(a)]
    numbers = _numbers([*(plain[1:] if value_first else plain), *kwargs.values()])
    estimate = sum(_size(a) for a in plain) + sum(_size(v) for v in kwargs.values()) + numbers
    if value_first and plain:
        value, rest = plain[0], plain[1:]
        if name == "join" and isinstance(value, (list, tuple, str)):
            separator = rest[0] if rest else kwargs.get("d", "")
            estimate = _joined_size(str(separator), value)
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            estimate = _replaced_size(value, *rest[:3])
        elif name == "format" and isinstance(value, str):
            estimate = _formatted_size(value, [*rest, *kwargs.values()])
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            width = len(width) if isinstance(width, str) else width
            estimate = len(value) + (value.count("\n") + 1) * int(width)
        elif name == "wordwrap" and isinstance(value, str):
            wrap = kwargs.get("wrapstring") or (rest[2] if len(rest) > 2 else None) or "\n"
            width = max(1, int(rest[0] if rest else kwargs.get("width", 79)))
            estimate = len(value) + (len(value) // width + 1) * len(str(wrap))
        elif name == "tojson":
            indent = rest[0] if rest else kwargs.get("indent")
            if isinstance(indent, int) and indent > MAX_JSON_INDENT:
                _refuse(f"tojson's indent of {indent} is beyond {MAX_JSON_INDENT}")
    budget.size(estimate, f"the result of {name}")


def _is_jinja_context(value: Any) -> bool:
    """Whether a filter argument is what pass_context / pass_environment add in front."""
    from jinja2 import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return isinstance(value, (Context, EvalContext, Environment))


def _materialized(args: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """`args` with args[index] turned into a list (a generator can be measured only once)."""
    if len(args) > index and not isinstance(args[index], (list, tuple, str, dict)):
        try:
            items = iter(args[index])
        except TypeError:
            return args
        _budget().tick()
        return (*args[:index], list(items), *args[index + 1 :])
    return args


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps jinja_pass_arg (pass_context and friends)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "join":
            value_at = next((i for i, a in enumerate(args) if not _is_jinja_context(a)), 0)
            args = _materialized(args, value_at)
        _check_call(name, True, args, kwargs)
        result = function(*args, **kwargs)
        _budget().size(_size(result), f"the result of the filter {name}")
        return result

    return bounded


def _bounded_join(parts: Iterable[Any]) -> str:
    """`environment.concat` and the `~` operator: join, counting as it goes."""
    budget = _budget()
    out, total = [], 0
    for part in parts:
        text = part if isinstance(part, str) else str(part)
        total += len(text)
        budget.size(total, "a joined text")
        budget.tick()
        out.append(text)
    return "".join(out)


@contextmanager
def _deadline_on_every_line(budget: _Budget) -> Any:
    """Check the deadline on each line of template code this thread runs.

    Loops over plain lists or strings call nothing the sandbox sees; the trace function
    does see them. Only template frames are traced line by line, and the previous trace
    function (a debugger, coverage) is put back afterwards.
    """

    def lines(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            budget.tick()
        return lines

    def calls(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename == _TEMPLATE_FILE:
            budget.tick()
            return lines
        return None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        yield
    finally:
        sys.settrace(previous)


def _environment() -> Any:
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        def visit_Concat(self, node: Any, frame: Any) -> None:  # `a ~ b`: counted
            self.write("environment.bounded_join((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset({"*", "+", "%", "**", "//", "/", "-"})
        concat = staticmethod(_bounded_join)
        bounded_join = staticmethod(_bounded_join)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            budget = _budget()
            budget.tick()
            _check_binop(budget, operator, left, right)
            result = super().call_binop(context, operator, left, right)
            budget.size(_size(result), f"the result of {operator}")
            return result

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            name = getattr(__obj, "__name__", type(__obj).__name__)
            if name == "join" and isinstance(getattr(__obj, "__self__", None), str):
                args = _materialized(args, 0)
            estimate = _method_size(__obj, args, kwargs)
            if estimate is None:
                _check_call(name, False, args, kwargs)
            else:
                _numbers([*args, *kwargs.values()])
                _budget().size(estimate, f"the result of {name}")
            result = super().call(__context, __obj, *args, **kwargs)
            _budget().size(_size(result), f"the result of {name}")
            return result

        def getattr(self, obj: Any, attribute: str) -> Any:
            _budget().tick()
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _budget().tick()
            return super().getitem(obj, argument)

    # trim_blocks / lstrip_blocks: the settings the templates are written for (as in
    # Hugging Face's apply_chat_template), so that "{% ... %}" lines leave no blank lines.
    env = BoundedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.globals.pop("lipsum", None)  # generates text by the paragraph: no template needs it

    def raise_exception(message: str) -> None:
        raise ModelFormatError(f"the chat template refused the conversation: {message}")

    env.globals["raise_exception"] = raise_exception
    return env


def _check_binop(budget: _Budget, operator: str, left: Any, right: Any) -> None:
    """Refuse an operator whose result would be too large, before it is computed."""
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(seq, (str, list, tuple)):
                budget.size(len(seq) * max(count, 0), "a repeated text or list")
        if _is_int(left) and _is_int(right):
            _int_bits(left.bit_length() + right.bit_length())
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            budget.size(len(left) + len(right), "a joined text or list")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0:
            _int_bits(max(left.bit_length(), 1) * right)
    elif operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else [right]
        if isinstance(right, dict):
            values = list(right.values())
        budget.size(_formatted_size(left, values), "a formatted text")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        _refuse(f"a number of about {bits:,} bits is beyond {MAX_INT_BITS:,}")


_ENVIRONMENT: Any = None


def _shared_environment() -> Any:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = _environment()
    return _ENVIRONMENT


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError

    try:
        return _shared_environment().from_string(template)
    except TemplateError as e:
        raise ModelFormatError(f"the model's chat template is not valid Jinja: {e}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as e:
        raise ModelFormatError(
            f"the model's chat template cannot be read: {type(e).__name__}: {e}"
        ) from None


def render_chat(
    template: str,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The text of `messages` laid out by `template`, ready for the assistant's reply.

    Raises ModelFormatError when the template is not valid Jinja, fails, or goes beyond the
    limits on time and size described above.
    """
    if not isinstance(template, str):
        raise ModelFormatError("the model's chat template is not a text")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ModelFormatError(
            f"the model's chat template has {len(template):,} characters; real ones have a few "
            f"thousand (at most {MAX_TEMPLATE_CHARS:,} are read)"
        )
    given = sum(len(str(v)) for m in messages for v in m.values()) + len(bos_token + eos_token)
    budget = _Budget(max(MIN_OUTPUT_CHARS, 8 * given))
    token = _current.set(budget)
    try:
        with _deadline_on_every_line(budget):
            compiled = _compile(template)
            stream = compiled.generate(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
            )
            return _bounded_join(stream)
    except ModelFormatError:
        raise
    except RecursionError:
        raise ModelFormatError(
            "the model's chat template failed: it calls itself without end"
        ) from None
    except Exception as e:  # TemplateError, SecurityError, and Python errors of its code
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ModelFormatError(f"the model's chat template failed: {reason}") from None
    finally:
        _current.reset(token)
