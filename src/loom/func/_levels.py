"""The transform stack: one level per active transform, each with an id that is never reused.

See NOTE [level ids are never reused]: a ``BatchedTensor`` records the id of the vmap level that made it, and
such tensors can outlive their level (saved in an autograd graph, leaked through a closure). A fresh id per
level means a stale tensor can never be mistaken for one of a newer level.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

# NOTE [level ids are never reused]
# Ids come from one process-wide counter. Higher ids are inner (more recently entered) levels, so "the
# highest level among an op's inputs handles the op" is a plain ``max`` over ids.
_ids = itertools.count(1)

_STACK: list[Level] = []
# Live vmap levels by id, for the per-op lookup in BatchedTensor.__torch_dispatch__.
LIVE_VMAP: dict[int, VmapLevel] = {}
# The attribute that tags a grad level's own leaf aliases with the level's id (see _autodiff.make_alias).
ALIAS_LEVEL_ATTR = "_loom_alias_level"


class Level:
    """One entry of the transform stack."""

    kind = "level"

    def __init__(self, call: Any) -> None:
        self.id = next(_ids)
        self._call = call  # how the user called the transform (a str, or a callable that formats it)

    @property
    def call(self) -> str:
        """The user's call, as repeated in error messages: ``vmap(f, in_dims=(0, None))(Tensor[3, 4], 2)``."""
        if not isinstance(self._call, str):
            self._call = self._call()
        return str(self._call)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, call={self.call!r})"


class VmapLevel(Level):
    """A vmap level: its batch size and randomness mode."""

    kind = "vmap"

    def __init__(self, call: Any, batch_size: int, randomness: str) -> None:
        super().__init__(call)
        self.batch_size = batch_size
        self.randomness = randomness
        # Captured at entry; BatchedTensor re-enters autograd with them. See NOTE [re-entering autograd].
        self.dispatch_keys = (
            torch._C._dispatch_tls_local_include_set(),
            torch._C._dispatch_tls_local_exclude_set(),
        )


class GradLevel(Level):
    """A reverse-mode level (grad, grad_and_value, vjp, jacrev)."""

    kind = "grad"


class JvpLevel(Level):
    """A forward-mode level (jvp, jacfwd, linearize)."""

    kind = "jvp"

    def __init__(self, call: Any, uses_forward_ad: bool) -> None:
        super().__init__(call)
        self.uses_forward_ad = uses_forward_ad


L = TypeVar("L", bound=Level)


@contextmanager
def push_level(level: L) -> Iterator[L]:
    """Push ``level`` for the duration of the ``with`` block; pops it even on error."""
    _STACK.append(level)
    if isinstance(level, VmapLevel):
        LIVE_VMAP[level.id] = level
    try:
        yield level
    finally:
        popped = _STACK.pop()
        if isinstance(popped, VmapLevel):
            del LIVE_VMAP[popped.id]


def autodiff_level_live() -> bool:
    """True if any grad or jvp level is on the stack."""
    return any(lv.kind != "vmap" for lv in _STACK)


def forward_ad_level_live() -> bool:
    """True if a jvp level that uses torch's (single) forward-AD level is on the stack."""
    return any(isinstance(lv, JvpLevel) and lv.uses_forward_ad for lv in _STACK)


def innermost_vmap() -> VmapLevel | None:
    """The most recently entered live vmap level, if any."""
    for lv in reversed(_STACK):
        if isinstance(lv, VmapLevel):
            return lv
    return None


def stack() -> tuple[Any, ...]:
    """A snapshot of the stack, outermost first (for debugging and tests)."""
    return tuple(_STACK)
