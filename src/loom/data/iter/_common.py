"""Small state helpers shared by iterable pipes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Pending:
    """A list being handed out one item at a time; ``remaining()`` is what has not been handed out.

    Pipes that turn one input into several outputs (unbatch, flatmap, repeat) materialize them into
    a list and hand them out through its C iterator, so no per-item bookkeeping runs in Python.
    """

    __slots__ = ("it", "items")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.it: Iterator[Any] = iter(items)

    def reset(self, items: list[Any]) -> Iterator[Any]:
        self.items = items
        self.it = iter(items)
        return self.it

    def remaining(self) -> list[Any]:
        return self.items[len(self.items) - self.it.__length_hint__() :]  # type: ignore[attr-defined]


def load_list(call: str, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise RuntimeError(f"load_state_dict: {call} expects a list {key!r}, got {value!r}")
    return list(value)
