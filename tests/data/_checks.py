"""Shared checks for loom.data tests: resume at every position, plain-data state, buffer overflows."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import torch

_PLAIN = (int, float, str, bytes, bool, type(None), torch.Tensor)


def assert_plain(value: Any, path: str = "state") -> None:
    """State dicts hold numbers, strings, lists, tuples, dicts and tensors only."""
    if type(value) is dict:
        for k, v in value.items():
            assert isinstance(k, (str, int)), f"{path}: key {k!r} is not a str or int"
            assert_plain(v, f"{path}.{k}")
    elif type(value) in (list, tuple):
        for i, v in enumerate(value):
            assert_plain(v, f"{path}[{i}]")
    else:
        assert isinstance(value, _PLAIN), f"{path}: {type(value).__name__} is not plain data"


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Through torch.save and torch.load(weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded: dict[str, Any] = torch.load(buf, weights_only=True)
    return loaded


def _same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and torch.equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def assert_resumes_identically(build_pipe: Callable[[], Any], *, every: int = 1) -> list[Any]:
    """Snapshot at every position, restore into a freshly built pipeline, and compare what follows.

    ``build_pipe`` must build the same pipeline each call (seed random pipes in it). Each state also
    goes through ``torch.save``/``torch.load(weights_only=True)``. Returns the full output.
    """
    reference = list(build_pipe())
    again = list(build_pipe())
    assert _same(reference, again), "build_pipe() is not deterministic: seed its random pipes"
    it = iter(build_pipe())
    states: list[dict[str, Any]] = []
    produced: list[Any] = []
    while True:
        states.append(it.state_dict())
        try:
            produced.append(next(it))
        except StopIteration:
            break
    assert _same(produced, reference), "taking state_dict() changed what the iterator produces"
    for position in range(0, len(states), every):
        state = states[position]
        assert_plain(state)
        for candidate in (state, roundtrip(state)):
            restored = iter(build_pipe())
            restored.load_state_dict(candidate)
            rest = list(restored)
            assert _same(rest, reference[position:]), (
                f"restored at position {position}: got {rest[:5]}... expected {reference[position : position + 5]}..."
            )
    # A state taken at the end restores into an exhausted iterator.
    return reference


def until_buffer_error(it: Iterator[Any]) -> tuple[list[Any], bool]:
    """What ``it`` yields before it raises ``BufferError`` (a full buffer), and whether it raised."""
    out = []
    try:
        for x in it:
            out.append(x)
    except BufferError:
        return out, True
    return out, False
