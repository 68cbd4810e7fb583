"""Argument checks shared by pipes: callables, ``input_col``/``output_col``, sources, integers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def fn_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return fn_name(fn.func)
    return getattr(fn, "__qualname__", None) or repr(fn)


def check_fn(call: str, arg: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{call}: {arg} must be callable, got {fn!r}")


def check_source(call: str, source: Any) -> None:
    from loom.data._datapipe import MapDataPipe

    if isinstance(source, MapDataPipe) or not hasattr(source, "__iter__"):
        raise TypeError(
            f"{call}: the source must be an IterDataPipe (or an iterable), got {type(source).__name__}"
        )


def check_int(call: str, arg: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{call}: {arg} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{call}: {arg} must be >= {minimum}, got {value}")


def unzip_columns(sequence_length: int, columns_to_skip: Any) -> list[int]:
    """The columns ``unzip`` keeps, checked: ``sequence_length`` >= 1, skips in range, at least one kept."""
    check_int("unzip", "sequence_length", sequence_length, 1)
    skips = set() if columns_to_skip is None else set(columns_to_skip)
    for c in skips:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < sequence_length:
            raise ValueError(
                f"unzip: columns_to_skip must hold ints in [0, {sequence_length - 1}], got {c!r}"
            )
    columns = [i for i in range(sequence_length) if i not in skips]
    if not columns:
        raise ValueError(
            f"unzip: columns_to_skip={sorted(skips)} skips every column of sequence_length={sequence_length}"
        )
    return columns


def check_input_col(call: str, fn: Callable[..., Any], input_col: Any) -> None:
    """``fn`` must accept as many positional arguments as ``input_col`` selects (torchdata's rule)."""
    try:
        sig = inspect.signature(fn)
    except (ValueError, TypeError):  # builtins without a signature
        return
    need = len(input_col) if isinstance(input_col, (list, tuple)) else 1
    positional = []
    var_positional = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p)
        elif p.kind is p.VAR_POSITIONAL:
            var_positional = True
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            raise ValueError(f"{call}: {fn_name(fn)} has a keyword-only parameter {p.name!r} without default")
    required = [p for p in positional if p.default is p.empty]
    if len(required) > need or (len(positional) < need and not var_positional):
        raise ValueError(
            f"{call}: {fn_name(fn)} takes {len(positional)} positional parameters "
            f"({len(required)} required), but input_col={input_col!r} passes {need}"
        )


def column_applier(fn: Callable[..., Any], input_col: Any, output_col: Any) -> Callable[[Any], Any]:
    """``data -> data with fn applied to its columns``, as torchdata's Mapper; the input is not modified."""
    multi = isinstance(input_col, (list, tuple))

    def apply(data: Any) -> Any:
        res = fn(*[data[c] for c in input_col]) if multi else fn(data[input_col])
        was_tuple = isinstance(data, tuple)
        out: Any = list(data) if was_tuple else (dict(data) if isinstance(data, dict) else _shallow(data))
        if output_col is None:
            if multi:
                out[input_col[0]] = res
                for idx in sorted(input_col[1:], reverse=True):
                    del out[idx]
            else:
                out[input_col] = res
        elif output_col == -1:
            out.append(res)
        else:
            out[output_col] = res
        return tuple(out) if was_tuple else out

    return apply


def _shallow(data: Any) -> Any:
    import copy

    return copy.copy(data)


def column_selector(fn: Callable[..., Any], input_col: Any) -> Callable[[Any], Any]:
    if input_col is None:
        return fn
    if isinstance(input_col, (list, tuple)):
        return lambda data: fn(*[data[c] for c in input_col])
    return lambda data: fn(data[input_col])
