"""Small helpers shared by the subsystems. Imports nothing from loom."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")


def safe_zip(*seqs: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``zip`` that raises if the sequences differ in length."""
    if seqs:
        n = len(seqs[0])
        for s in seqs[1:]:
            if len(s) != n:
                raise ValueError(f"safe_zip: lengths differ: {[len(x) for x in seqs]}")
    return list(zip(*seqs))


def unzip2(pairs: Iterable[tuple[T, U]]) -> tuple[list[T], list[U]]:
    """Split a list of pairs into two lists."""
    xs: list[T] = []
    ys: list[U] = []
    for x, y in pairs:
        xs.append(x)
        ys.append(y)
    return xs, ys


def as_tuple(x: Any) -> tuple[Any, ...]:
    """``x`` if it is a tuple, else ``(x,)``."""
    return x if isinstance(x, tuple) else (x,)
