"""Formatting the user's call for error messages: ``vmap(f, in_dims=(0, None))(Tensor[3, 4], 2)``."""

from __future__ import annotations

from typing import Any

import torch


def fn_name(func: Any) -> str:
    """A short name for ``func``: its ``__name__``, or its repr."""
    name = getattr(func, "__name__", None)
    if name is None and hasattr(func, "func"):  # functools.partial
        return f"partial({fn_name(func.func)})"
    return str(name) if name is not None else type(func).__name__


def describe_value(x: Any) -> str:
    """``Tensor[3, 4]`` for tensors, containers recursively, ``repr`` (shortened) for the rest."""
    if isinstance(x, torch.Tensor):
        return f"Tensor[{', '.join(str(s) for s in x.shape)}]"
    if isinstance(x, tuple):
        inner = ", ".join(describe_value(e) for e in x)
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if isinstance(x, list):
        return "[" + ", ".join(describe_value(e) for e in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {describe_value(v)}" for k, v in x.items()) + "}"
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_call(transform: str, func: Any, options: dict[str, Any], args: tuple[Any, ...]) -> str:
    """``transform(f, k=v, ...)(args)``, listing only the options given."""
    opts = "".join(f", {k}={v!r}" for k, v in options.items())
    inputs = ", ".join(describe_value(a) for a in args)
    return f"{transform}({fn_name(func)}{opts})({inputs})"


class LazyCall:
    """The user's call, formatted only when an error message needs it (formatting costs microseconds)."""

    __slots__ = ("args", "func", "options", "text", "transform")

    def __init__(self, transform: str, func: Any, options: dict[str, Any], args: tuple[Any, ...]) -> None:
        self.transform = transform
        self.func = func
        self.options = options
        self.args = args
        self.text: str | None = None

    def __str__(self) -> str:
        if self.text is None:
            self.text = describe_call(self.transform, self.func, self.options, self.args)
        return self.text

    def __call__(self) -> str:
        return str(self)
