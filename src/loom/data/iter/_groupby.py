"""Grouper: groups elements by key in a bounded buffer (functional name: ``groupby``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_fn, check_int
from loom.data._datapipe import DataChunk, IterDataPipe, functional_datapipe
from loom.data.iter._common import load_list

__all__ = ["Grouper"]


class _Groups:
    __slots__ = ("draining", "groups", "size")

    def __init__(self, groups: dict[Any, list[Any]], draining: bool) -> None:
        self.groups = groups
        self.size = sum(len(g) for g in groups.values())
        self.draining = draining


@functional_datapipe("groupby")
class Grouper(IterDataPipe):
    """Groups elements by ``group_key_fn`` into batches of up to ``group_size`` (functional name: ``groupby``).

    As torch's ``groupby``: a group is yielded as soon as it has ``group_size`` elements. When the
    buffer holds ``buffer_size`` elements, its largest group is yielded if it has at least
    ``guaranteed_group_size`` elements, else dropped (``drop_remaining=True``) or reported as an
    error. At the end, the remaining groups follow in the order their keys first appeared. The
    buffer is part of the iterator state.

    Args:
        datapipe: the source pipe.
        group_key_fn: an element's key.
        keep_key: yield ``(key, group)`` instead of ``group``.
        buffer_size: the most elements held, at least 1.
        group_size: the largest group (``None``: no limit), at most ``buffer_size``.
        guaranteed_group_size: the smallest group yielded when the buffer is full (needs ``group_size``).
        drop_remaining: drop a too-small largest group when the buffer is full instead of raising.

    Raises:
        RuntimeError: (while iterating) the buffer is full and its largest group is smaller than
            ``guaranteed_group_size`` with ``drop_remaining=False``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(["a1", "b1", "a2", "c1"]).groupby(lambda s: s[0]))
        [['a1', 'a2'], ['b1'], ['c1']]
    """

    _repr_fields = ("group_key_fn", "buffer_size", "group_size")

    def __init__(
        self,
        datapipe: IterDataPipe,
        group_key_fn: Callable[[Any], Any],
        *,
        keep_key: bool = False,
        buffer_size: int = 10000,
        group_size: int | None = None,
        guaranteed_group_size: int | None = None,
        drop_remaining: bool = False,
    ) -> None:
        if not isinstance(datapipe, IterDataPipe):
            raise TypeError(f"groupby: the source must be an IterDataPipe, got {type(datapipe).__name__}")
        check_fn("groupby", "group_key_fn", group_key_fn)
        check_int("groupby", "buffer_size", buffer_size, 1)
        guaranteed = None
        if group_size is not None:
            check_int("groupby", "group_size", group_size, 1)
            if group_size > buffer_size:
                raise ValueError(
                    f"groupby: group_size must be <= buffer_size, got group_size={group_size}, buffer_size={buffer_size}"
                )
            guaranteed = group_size
        if guaranteed_group_size is not None:
            if group_size is None:
                raise ValueError("groupby: guaranteed_group_size needs group_size to be set")
            check_int("groupby", "guaranteed_group_size", guaranteed_group_size, 1)
            if guaranteed_group_size > group_size:
                raise ValueError(
                    f"groupby: guaranteed_group_size must be <= group_size, got {guaranteed_group_size} > {group_size}"
                )
            guaranteed = guaranteed_group_size
        self.datapipe = datapipe
        self.group_key_fn = group_key_fn
        self.keep_key = keep_key
        self.buffer_size = buffer_size
        self.group_size = group_size
        self.guaranteed_group_size = guaranteed
        self.drop_remaining = drop_remaining
        self.wrapper_class = DataChunk

    def _sources(self) -> tuple[Any, ...]:
        return (self.datapipe,)

    def _init_state(self, ctx: Any) -> _Groups:
        return _Groups({}, False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _Groups) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _evict_largest(self, state: _Groups) -> tuple[Any, list[Any] | None]:
        groups = state.groups
        key = max(groups, key=lambda k: len(groups[k]))  # the first of the largest, as torch
        items = groups.pop(key)
        state.size -= len(items)
        low = self.guaranteed_group_size
        if low is not None and len(items) < low:
            if not self.drop_remaining:
                raise RuntimeError(
                    f"groupby: the buffer is full ({self.buffer_size} elements) and its largest group (key "
                    f"{key!r}, {len(items)} elements) is smaller than guaranteed_group_size={low}; raise "
                    "buffer_size or pass drop_remaining=True"
                )
            return key, None
        return key, items

    def _run(self, src: Iterator[Any], state: _Groups) -> Iterator[Any]:
        key_fn, size, wrap, keep_key = self.group_key_fn, self.group_size, self.wrapper_class, self.keep_key
        groups = state.groups
        if not state.draining:
            for x in src:
                key = key_fn(x)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = []
                group.append(x)
                state.size += 1
                if size is not None and len(group) == size:
                    del groups[key]
                    state.size -= size
                    yield (key, wrap(group)) if keep_key else wrap(group)
                if state.size == self.buffer_size:
                    evicted, items = self._evict_largest(state)
                    if items is not None:
                        # torch labels this group with the key of the element just read; ours is its own.
                        yield (evicted, wrap(items)) if keep_key else wrap(items)
            state.draining = True
        while groups:
            key = next(iter(groups))
            items = groups.pop(key)
            state.size -= len(items)
            yield (key, wrap(items)) if keep_key else wrap(items)

    def _save_state(self, state: _Groups) -> dict[str, Any]:
        return {"groups": [[k, list(v)] for k, v in state.groups.items()], "draining": state.draining}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Groups:
        pairs = load_list("Grouper", data, "groups")
        if any(not isinstance(p, (list, tuple)) or len(p) != 2 or not isinstance(p[1], list) for p in pairs):
            raise RuntimeError("load_state_dict: Grouper expects 'groups' as [key, elements] pairs")
        state = _Groups({k: list(v) for k, v in pairs}, bool(data.get("draining")))
        if state.size > self.buffer_size:
            raise RuntimeError(
                f"load_state_dict: Grouper holds at most buffer_size={self.buffer_size} elements, got {state.size}"
            )
        return state
