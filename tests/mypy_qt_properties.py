"""A mypy plugin: Qt widgets take their inherited properties as keyword arguments.

PySide6 sets any Qt property given to a constructor, `QLabel(objectName="title")` or
`QProgressBar(visible=False)`, but its stubs list only the properties a class declares
itself, so mypy rejects `objectName` (QObject's), `toolTip`, `enabled` and `visible`
(QWidget's) everywhere. This plugin adds, to the constructor of every PySide6 class, the
keyword-only property arguments of its base classes' constructors, with their types: the
calls are checked as PySide6 runs them, instead of not at all.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import ARG_NAMED_OPT, ARG_STAR2, TypeInfo
from mypy.plugin import FunctionSigContext, MethodSigContext, Plugin
from mypy.types import CallableType, FunctionLike, Instance, Overloaded, Type, get_proper_type

_PREFIX = "PySide6."


def _inherited_keywords(info: TypeInfo) -> dict[str, Type]:
    """The keyword-only arguments of the constructors of the bases of `info`, nearest first."""
    found: dict[str, Type] = {}
    for base in info.mro[1:]:
        if not base.fullname.startswith(_PREFIX):
            continue
        init = base.names.get("__init__")
        init_type = get_proper_type(init.type) if init is not None else None
        items: list[CallableType] = []
        if isinstance(init_type, Overloaded):
            items = list(init_type.items)
        elif isinstance(init_type, CallableType):
            items = [init_type]
        for item in items:
            for name, kind, typ in zip(item.arg_names, item.arg_kinds, item.arg_types, strict=True):
                if kind == ARG_NAMED_OPT and name is not None:
                    found.setdefault(name, typ)
    return found


def _widened(signature: CallableType, info: TypeInfo) -> CallableType:
    own = {name for name in signature.arg_names if name is not None}
    extra = {n: t for n, t in _inherited_keywords(info).items() if n not in own}
    if not extra:
        return signature
    kinds, names, types = (
        list(signature.arg_kinds),
        list(signature.arg_names),
        list(signature.arg_types),
    )
    # Keyword-only arguments go before a **kwargs, if there is one.
    at = kinds.index(ARG_STAR2) if ARG_STAR2 in kinds else len(kinds)
    kinds[at:at] = [ARG_NAMED_OPT] * len(extra)
    names[at:at] = list(extra)
    types[at:at] = list(extra.values())
    return signature.copy_modified(arg_kinds=kinds, arg_names=names, arg_types=types)


def _constructor(ctx: FunctionSigContext) -> FunctionLike:
    """`QLabel(...)`: the class is the constructor's return type."""
    returned = get_proper_type(ctx.default_signature.ret_type)
    if not isinstance(returned, Instance):
        return ctx.default_signature
    return _widened(ctx.default_signature, returned.type)


def _init_method(ctx: MethodSigContext) -> FunctionLike:
    """`super().__init__(...)` in a subclass, or `QLabel.__init__(self, ...)`."""
    owner = get_proper_type(ctx.type)
    if not isinstance(owner, Instance):
        return ctx.default_signature
    return _widened(ctx.default_signature, owner.type)


class QtPropertiesPlugin(Plugin):
    def get_function_signature_hook(
        self, fullname: str
    ) -> Callable[[FunctionSigContext], FunctionLike] | None:
        return _constructor if fullname.startswith(_PREFIX) else None

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], FunctionLike] | None:
        if fullname.startswith(_PREFIX) and fullname.endswith(".__init__"):
            return _init_method
        return None


def plugin(version: str) -> type[Plugin]:
    return QtPropertiesPlugin
