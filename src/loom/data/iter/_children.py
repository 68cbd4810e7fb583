"""The machinery behind multi-output pipes: child pipes reading one shared, bounded, resumable iteration.

# NOTE [children share one live iteration]
# ``fork``/``unzip``/``demux`` return child pipes that read one upstream iteration through a
# container (``child.main_datapipe``), as in torchdata. The children may be iterated by one
# iterator (``Zipper(*pipe.fork(2))``) or by separate ones (``zip(*pipe.fork(2))``), so the live
# iteration (upstream chain, buffer, child positions) is kept on the container, not in one
# iterator: a child's ``_sources()`` is empty and the container builds the upstream chain itself
# with ``_iterator._build``.
# - A generation is one shared pass over the upstream. The first child iterator starts it; a child
#   that already has an iterator in the current generation and asks for a new one starts the next
#   generation, which invalidates the old generation's iterators (they raise RuntimeError), as in
#   torchdata.
# - Each child's state holds the whole shared state (upstream state, buffers, every position) plus
#   a token (generation id, steps taken). Restoring the first child rebuilds the shared iteration;
#   a sibling restored with the same token joins it. States of siblings taken at different points
#   cannot be combined: the later restore starts its own iteration and the earlier iterators raise.
#   Creating a child's iterator and then restoring it (``it = iter(b); it.load_state_dict(s)``)
#   works too: the pass that ``iter(b)`` displaced is taken back if ``s`` belongs to it.
# - Buffers are bounded by ``buffer_size`` (-1: no bound); exceeding it raises BufferError naming
#   the child that reads ahead, the one that lags and the count.
# - Why not ``_shared_in_iteration`` (one node per PipeIterator): children read by separate
#   iterators would then each start their own upstream pass, so a seeded shuffle upstream would
#   count two epochs and give the children different orders, and every element would be read twice.
# - Known gap: the upstream nodes are not among the child node's sources, so the DataLoader check
#   for a missing sharding_filter (``_iterator._warn_if_unsharded``) and ``profile()`` do not see
#   them; sharding itself works (the upstream ShardingFilter takes its worker shard as usual).
"""

from __future__ import annotations

import operator
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._datapipe import IterDataPipe
from loom.data.iter._combining import load_int
from loom.data.iter._common import load_list


def _save_chain(node: Any, path: str) -> dict[str, Any]:
    """The state of an upstream chain built with ``_iterator._build`` (``_save`` takes the path or not)."""
    from loom.data import _iterator

    save: Any = _iterator._save
    return save(node, path) if save.__code__.co_argcount >= 2 else save(node)  # type: ignore[no-any-return]


class _Live:
    """One generation of a container's shared iteration; see NOTE [children share one live iteration]."""

    def __init__(self, container: _Container, ctx: Any, saved: dict[str, Any] | None) -> None:
        from loom.data._iterator import _build

        n = container.num_instances
        self.container = container
        self.op = container._op
        self.bound = container.buffer_size
        self.stale = False
        self.attached: set[int] = set()
        source = None if saved is None else saved.get("source")
        if saved is not None and not isinstance(source, dict):
            raise RuntimeError(f"load_state_dict: {self.op} child state has no upstream 'source' state")
        self.node = _build(container.main_datapipe, ctx, source, f"{self.op}.source")
        self.it = self.node.it
        if saved is None:
            self.uid = int.from_bytes(os.urandom(6), "little")
            self.steps = 0
            self.started = [False] * n
        else:
            self.uid = load_int(self.op, saved, "uid", 0, 2**48)
            self.steps = load_int(self.op, saved, "steps", 0, 2**62)
            started = load_list(self.op, saved, "started")
            if len(started) != n:
                raise RuntimeError(
                    f"load_state_dict: {self.op} expects {n} 'started' flags, got {len(started)}"
                )
            self.started = [bool(s) for s in started]

    def token(self) -> tuple[int, int]:
        return (self.uid, self.steps)

    def invalid(self, i: int) -> RuntimeError:
        return RuntimeError(
            f"{self.op}: this iterator of child {i} was invalidated: a new iterator was created for a child "
            "that was already being iterated (or a child was restored from a state taken at another point), "
            "which restarts the shared iteration"
        )

    def save(self) -> dict[str, Any]:
        out = {"uid": self.uid, "steps": self.steps, "started": list(self.started)}
        out.update(self.save_buffers())
        out["source"] = _save_chain(self.node, f"{self.op}.source")
        return out

    def save_buffers(self) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, i: int) -> Iterator[Any]:
        """Child ``i``'s elements; shared state is updated before each ``yield``."""
        raise NotImplementedError


class _ForkLive(_Live):
    def __init__(self, container: _Container, ctx: Any, saved: dict[str, Any] | None) -> None:
        super().__init__(container, ctx, saved)
        n = container.num_instances
        self.picks: list[Callable[[Any], Any] | None] = container._picks()
        if saved is None:
            self.buffer: deque[Any] = deque()
            self.offset = 0
            self.pointers = [0] * n
            self.end = -1
            return
        self.buffer = deque(load_list(self.op, saved, "buffer"))
        self.offset = load_int(self.op, saved, "offset", 0, 2**62)
        pointers = load_list(self.op, saved, "pointers")
        if len(pointers) != n or any(
            not isinstance(p, int) or not self.offset <= p <= self.offset + len(self.buffer) for p in pointers
        ):
            raise RuntimeError(f"load_state_dict: {self.op} got inconsistent child positions {pointers!r}")
        self.pointers = pointers
        self.end = load_int(self.op, saved, "end", -1, 2**62)

    def save_buffers(self) -> dict[str, Any]:
        return {
            "buffer": list(self.buffer),
            "offset": self.offset,
            "pointers": list(self.pointers),
            "end": self.end,
        }

    def read(self, i: int) -> Iterator[Any]:
        pointers, buffer, it, bound, pick = self.pointers, self.buffer, self.it, self.bound, self.picks[i]
        while True:
            if self.stale:
                raise self.invalid(i)
            p = pointers[i]
            k = p - self.offset
            if k < len(buffer):
                x = buffer[k]
            elif p == self.end:
                return
            else:
                try:
                    x = next(it)
                except StopIteration:
                    self.end = p
                    return
                buffer.append(x)
            pointers[i] = p + 1
            if p == self.offset:
                low = min(pointers)
                while self.offset < low:
                    buffer.popleft()
                    self.offset += 1
            if len(buffer) > bound >= 0:
                slow = pointers.index(self.offset)
                raise BufferError(
                    f"{self.op}: buffer overflow: child {i} has read {p + 1} elements, {len(buffer)} ahead of "
                    f"child {slow}, more than buffer_size={bound}; iterate the children in step, or raise "
                    "buffer_size (-1 for no bound)"
                )
            self.steps += 1
            yield x if pick is None else pick(x)


class _DemuxLive(_Live):
    def __init__(self, container: _Container, ctx: Any, saved: dict[str, Any] | None) -> None:
        super().__init__(container, ctx, saved)
        n = container.num_instances
        self.classifier = container.classifier_fn  # type: ignore[attr-defined]
        self.drop_none = container.drop_none  # type: ignore[attr-defined]
        if saved is None:
            self.buffers: list[deque[Any]] = [deque() for _ in range(n)]
            self.exhausted = False
        else:
            buffers = load_list(self.op, saved, "buffers")
            if len(buffers) != n or not all(isinstance(b, list) for b in buffers):
                raise RuntimeError(f"load_state_dict: {self.op} expects {n} child buffers")
            self.buffers = [deque(b) for b in buffers]
            self.exhausted = bool(saved.get("exhausted"))
        self.usage = sum(len(b) for b in self.buffers)

    def _as_index(self, c: Any, x: Any) -> int:
        if c is not None:  # bools and numpy ints index lists, as in torch
            try:
                return operator.index(c)
            except TypeError:
                pass
        hint = " (or pass drop_none=True to drop elements classified None)" if c is None else ""
        raise ValueError(
            f"{self.op}: classifier_fn must return an int in [0, {len(self.buffers) - 1}], got {c!r} for {x!r}{hint}"
        )

    def save_buffers(self) -> dict[str, Any]:
        return {"buffers": [list(b) for b in self.buffers], "exhausted": self.exhausted}

    def read(self, i: int) -> Iterator[Any]:
        buffers, it, bound = self.buffers, self.it, self.bound
        own = buffers[i]
        n = len(buffers)
        classify, drop_none = self.classifier, self.drop_none
        while True:
            if self.stale:
                raise self.invalid(i)
            if own:
                self.usage -= 1
                self.steps += 1
                yield own.popleft()
                continue
            if self.exhausted:
                return
            try:
                x = next(it)
            except StopIteration:
                self.exhausted = True
                return
            c = classify(x)
            if c.__class__ is not int:
                if c is None and drop_none:
                    continue
                c = self._as_index(c, x)
            if not 0 <= c < n:
                raise ValueError(
                    f"{self.op}: classifier_fn must return an int in [0, {n - 1}], got {c!r} for {x!r}"
                )
            if c == i:
                self.steps += 1
                yield x
                continue
            buffers[c].append(x)
            self.usage += 1
            if self.usage > bound >= 0:
                raise BufferError(
                    f"{self.op}: buffer overflow: child {i} is looking for its next element while {self.usage} "
                    f"elements wait for the other children (child {c} holds {len(buffers[c])}), more than "
                    f"buffer_size={bound}; iterate the children in step, or raise buffer_size (-1 for no bound)"
                )


class _ChildState:
    __slots__ = ("index", "live")

    def __init__(self, live: _Live, index: int) -> None:
        self.live = live
        self.index = index


class _Container(IterDataPipe):
    """Holds the shared live iteration of ``num_instances`` children; never iterated itself."""

    _op = "fork"
    _live_class: type[_Live] = _ForkLive
    _repr_fields = ("num_instances", "buffer_size")

    def __init__(self, datapipe: IterDataPipe, num_instances: int, buffer_size: int) -> None:
        self.main_datapipe = datapipe
        self.num_instances = num_instances
        self.buffer_size = buffer_size
        self._live: _Live | None = None
        self._displaced: tuple[_Live, list[tuple[Any, int, int]]] | None = None

    def _picks(self) -> list[Callable[[Any], Any] | None]:
        return [None] * self.num_instances

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_live"] = None
        state["_displaced"] = None
        return state

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"{self._op}: the container is not iterable; iterate its children")

    def _replace_live(self, live: _Live) -> _Live:
        if self._live is not None and self._live is not live:
            self._live.stale = True
        self._live = live
        return live

    def _upstream_epochs(self) -> list[tuple[Any, int]]:
        from loom.data._graph import list_dps, traverse_dps

        pipes = list_dps(traverse_dps(self.main_datapipe))
        return [(p, p._epoch) for p in pipes if getattr(p, "_is_random", False) and hasattr(p, "_epoch")]

    def start_child(self, i: int, ctx: Any) -> _ChildState:
        live = self._live
        if live is None or live.stale or live.started[i]:
            # Remember what a new pass displaces: a restore that follows (iter(child) then
            # load_state_dict) may take it back; see load_child.
            before = None if live is None or live.stale else self._upstream_epochs()
            old = live
            live = self._replace_live(self._live_class(self, ctx, None))
            if old is None or before is None:
                self._displaced = None
            else:
                after = {id(p): e for p, e in self._upstream_epochs()}
                self._displaced = (old, [(p, e, after.get(id(p), e)) for p, e in before])
        live.started[i] = True
        ctx.shard = live.node.shard
        return _ChildState(live, i)

    def load_child(self, i: int, data: dict[str, Any], ctx: Any) -> _ChildState:
        if data.get("op") != self._op or data.get("child") != i:
            raise RuntimeError(
                f"load_state_dict: the state was taken from a different pipeline: expected {self._op} child {i}, "
                f"got {data.get('op')!r} child {data.get('child')!r}"
            )
        shared = data.get("shared")
        if not isinstance(shared, dict):
            raise RuntimeError(f"load_state_dict: {self._op} child {i} state has no 'shared' state")
        live = self._live
        token = (shared.get("uid"), shared.get("steps"))
        displaced = self._displaced
        if live is not None and not live.stale and live.token() == token and i not in live.attached:
            pass  # a sibling restored from the same point: join it
        elif displaced is not None and displaced[0].token() == token and i not in displaced[0].attached:
            # The pass this restore belongs to was displaced by the fresh iterator being restored
            # now (iter(child) before load_state_dict): take it back, and undo the epoch count.
            live = self._replace_live(displaced[0])
            live.stale = False
            for pipe, before, after in displaced[1]:
                if pipe._epoch == after:  # not set since by a restored iterator state
                    pipe._epoch = before
        else:
            live = self._replace_live(self._live_class(self, ctx, shared))
        self._displaced = None
        live.attached.add(i)
        ctx.shard = live.node.shard
        return _ChildState(live, i)

    def child_len(self, i: int) -> int:
        try:
            return len(self.main_datapipe)  # type: ignore[arg-type]
        except TypeError as err:
            raise TypeError(
                f"{self._op} child {i} doesn't have valid length: its source "
                f"{type(self.main_datapipe).__name__} has none"
            ) from err


class _ChildDataPipe(IterDataPipe):
    """One output of ``fork``/``unzip``/``demux``: reads through its container (``main_datapipe``)."""

    _repr_fields = ("instance_id",)

    def __init__(self, main_datapipe: _Container, instance_id: int) -> None:
        self.main_datapipe = main_datapipe
        self.instance_id = instance_id

    def _sources(self) -> tuple[Any, ...]:
        return ()  # See NOTE [children share one live iteration].

    def _init_state(self, ctx: Any) -> _ChildState:
        return self.main_datapipe.start_child(self.instance_id, ctx)

    def _iterate(self, srcs: list[Iterator[Any]], state: _ChildState) -> Iterator[Any]:
        return state.live.read(state.index)

    def _save_state(self, state: _ChildState) -> dict[str, Any]:
        live = state.live
        if live.stale:
            raise live.invalid(state.index)
        return {"op": live.op, "child": state.index, "shared": live.save()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _ChildState:
        return self.main_datapipe.load_child(self.instance_id, data, ctx)

    def __len__(self) -> int:
        return self.main_datapipe.child_len(self.instance_id)
