"""One live iteration of a pipe graph: the chain of raw iterators, its side states, save and restore.

# NOTE [iterator state format]
# ``iter(pipe).state_dict()`` is a nested dict of plain data, one level per pipe, from the output
# pipe down to the sources:
#
#   {"version": 1, "pipe": "Batcher", "state": {...its own...}, "source": {"pipe": "Mapper", ...}}
#
# A pipe with one source nests it under "source" (SOURCE_KEY), with several under "sources"
# (SOURCES_KEY, a list in ``_sources()`` order), with none under neither. "pipe" is the class name:
# restoring checks it level by level, so a state taken from a different pipeline fails with the path
# of the first mismatch instead of silently misaligning. The root also holds "random" (RANDOM_KEY):
# the seeds this iteration gave its random pipes, by graph position; see NOTE [seeds] in _random.py.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

from loom.data._datapipe import DataChunk, IterDataPipe, _is_native
from loom.data._profile import StageTimer, counted, produced, timed

__all__ = ["PipeIterator", "profiling"]

STATE_VERSION = 1
VERSION_KEY = "version"
PIPE_KEY = "pipe"
STATE_KEY = "state"
SOURCE_KEY = "source"
SOURCES_KEY = "sources"
RANDOM_KEY = "random"

_PROFILING = [False, False]  # counting, timing


def profiling(enabled: bool | None = None, *, timing: bool | None = None) -> bool:
    """Switch per-stage profiling on or off for iterators created afterwards; returns whether it is on.

    With profiling on, ``iter(pipe).profile()`` lists how many elements each stage has produced
    (exact). With ``timing=True`` too, each stage also reports ``time_s``, the seconds spent inside its
    ``next`` (including its sources), ``self_s``, that minus its sources' ``time_s`` (the self times
    of all stages add up to the output stage's ``time_s``), and ``sampled``, how many of its ``next``
    calls were timed. Cheap stages are timed about one element in 128 and the rest extrapolated, so
    ``time_s`` is an estimate unless ``sampled == produced``; see NOTE [per-stage timing] in
    ``_profile.py``. Off (the default), no counting or timing code is on the per-element path;
    ``timing=True`` switches profiling on, and ``profiling(False)`` switches both off.

    Args:
        enabled: switch counting on or off; ``None`` leaves it as it is.
        timing: switch per-stage timing on or off; ``None`` leaves it as it is.

    Returns:
        Whether profiling (counting) is on after the call.

    Example:
        >>> from loom.data import profiling
        >>> from loom.data.iter import IterableWrapper
        >>> _ = profiling(True)
        >>> it = iter(IterableWrapper(range(5)).filter(lambda x: x % 2 == 0))
        >>> _ = list(it)
        >>> [(row["pipe"], row["produced"]) for row in it.profile()]
        [('Filter', 3), ('IterableWrapper', 5)]
        >>> _ = profiling(True, timing=True)
        >>> it = iter(IterableWrapper(range(5)).filter(lambda x: x % 2 == 0))
        >>> _ = list(it)
        >>> rows = it.profile()
        >>> abs(sum(row["self_s"] for row in rows) - rows[0]["time_s"]) < 1e-9
        True
        >>> _ = profiling(False)
    """
    if enabled is not None:
        _PROFILING[0] = bool(enabled)
        if not enabled:
            _PROFILING[1] = False
    if timing is not None:
        _PROFILING[1] = bool(timing)
        if timing:
            _PROFILING[0] = True
    return _PROFILING[0]


def _profile_mode() -> int:
    """0: off, 1: counting, 2: counting and timing (what a worker process is told to use)."""
    return 2 if _PROFILING[1] else int(_PROFILING[0])


def _set_profile_mode(mode: int) -> None:
    profiling(mode >= 1, timing=mode >= 2)


class Context:
    """What one iteration's pipes may ask for while starting: seeds, sharding, worker info."""

    def __init__(self, root: Any) -> None:
        from loom.data._random import worker_info

        self.root = root
        self.worker = worker_info()
        self.shard: tuple[int, int] | None = None  # set while building a pipe: upstream sharding
        self._base_seed: int | None = None
        self._positions: dict[int, int] | None = None
        self._pipes: list[Any] | None = None
        self._distributed: bool | None = None
        self.random: dict[int, list[int]] = {}  # graph position -> [seed, epoch, starts]
        self.shared: dict[int, Any] = {}  # id(pipe) -> its node, for pipes shared within an iteration

    def seed_for(self, pipe: Any) -> int:
        """A seed for one random pipe for this epoch; see NOTE [seeds] in _random.py."""
        from loom.data._random import seed_for

        return seed_for(self, pipe)

    def distributed(self) -> bool:
        """Whether a sharding filter in this graph shards across ranks (a DISTRIBUTED group)."""
        if self._distributed is None:
            self._distributed = any(
                2 in getattr(p, "groups", {})  # SHARDING_PRIORITIES.DISTRIBUTED
                for p in self._graph()
                if getattr(p, "_is_sharding", False)
            )
        return self._distributed

    def _graph(self) -> list[Any]:
        if self._pipes is None:
            from loom.data._graph import list_dps, traverse_dps

            self._pipes = list_dps(traverse_dps(self.root))
            self._positions = {id(p): i for i, p in enumerate(self._pipes)}
        return self._pipes

    def position(self, pipe: Any) -> int:
        self._graph()
        assert self._positions is not None
        return self._positions.get(id(pipe), -1)

    def pipe_at(self, position: int) -> Any:
        pipes = self._graph()
        return pipes[position] if 0 <= position < len(pipes) else None

    def base_seed(self) -> int:
        if self._base_seed is None:
            from loom.data._random import draw_base_seed, mix

            self._base_seed = draw_base_seed(self.worker)
            if self.worker is not None:
                # Persistent workers keep their seed across epochs: count the epochs they run.
                epoch = getattr(self.root, "_worker_epoch", 0)
                self.root._worker_epoch = epoch + 1
                self._base_seed = mix(self._base_seed, epoch)
        return self._base_seed


class _Node:
    """A pipe's part of one iteration: its raw iterator, side state and source nodes."""

    __slots__ = (
        "counter",
        "guarded",
        "it",
        "name",
        "native",
        "path",
        "pipe",
        "shard",
        "sources",
        "state",
        "stateless",
        "timer",
    )

    def __init__(self, pipe: Any, path: str) -> None:
        self.pipe = pipe
        self.path = path
        self.name = type(pipe).__name__
        self.native = _is_native(pipe)
        kind = type(pipe)
        self.stateless = self.native and kind._save_state is IterDataPipe._save_state
        self.guarded = self.native and kind._snapshot_guard is not IterDataPipe._snapshot_guard
        self.sources: list[_Node] = []
        self.state: Any = None
        self.it: Iterator[Any] = iter(())
        self.shard: tuple[int, int] | None = None
        self.counter: Any = None  # with profiling, the count of elements produced
        self.timer: StageTimer | None = None  # with timing too


def _build(pipe: Any, ctx: Context, saved: dict[str, Any] | None, path: str) -> _Node:
    shared = getattr(pipe, "_shared_in_iteration", False)
    if shared and id(pipe) in ctx.shared:
        return ctx.shared[id(pipe)]  # type: ignore[no-any-return]  # see NOTE [how a built-in pipe is written]: one node per iteration
    node = _Node(pipe, path)
    if shared:
        ctx.shared[id(pipe)] = node
    if not node.native:
        it = iter(pipe)
        if saved is not None:
            if not (hasattr(it, "load_state_dict") and hasattr(it, "state_dict")):
                raise RuntimeError(_not_resumable(node, path))
            _check_name(node, saved, path)
            it.load_state_dict(saved[STATE_KEY])
        node.state = it
        node.it = it
        return _count(node)
    srcs = pipe._sources()
    if saved is not None:
        _check_name(node, saved, path)
    for i, src in enumerate(srcs):
        sub = None
        if saved is not None:
            sub = _sub_state(saved, len(srcs), i, path, node)
        sub_path = f"{path}.{SOURCE_KEY}" if len(srcs) == 1 else f"{path}.{SOURCES_KEY}[{i}]"
        node.sources.append(_build(src, ctx, sub, sub_path))
    shards = [s.shard for s in node.sources if s.shard is not None]
    ctx.shard = shards[0] if shards else None
    if saved is None:
        node.state = pipe._init_state(ctx)
    else:
        node.state = pipe._load_state(_decode(saved.get(STATE_KEY, {})), ctx)
    node.shard = ctx.shard  # a sharding pipe's _init_state/_load_state sets its own
    if getattr(pipe, "_restarts_sources", False):
        handles = [SourceHandle(node, i, ctx, path) for i in range(len(node.sources))]
        node.it = pipe._iterate(handles, node.state)
    else:
        node.it = pipe._iterate([s.it for s in node.sources], node.state)
    return _count(node)


class SourceHandle:
    """Given to pipes with ``_restarts_sources = True`` (Cycler): the source's iterator, and a restart.

    ``restart()`` starts a new epoch of the source (a fresh sub-chain, reseeded), which from then on
    is the one whose state is saved.
    """

    __slots__ = ("ctx", "index", "node", "path")

    def __init__(self, node: _Node, index: int, ctx: Context, path: str) -> None:
        self.node = node
        self.index = index
        self.ctx = ctx
        self.path = path

    @property
    def it(self) -> Iterator[Any]:
        return self.node.sources[self.index].it

    def restart(self) -> Iterator[Any]:
        old = self.node.sources[self.index]
        sub = (
            f"{self.path}.{SOURCE_KEY}"
            if len(self.node.sources) == 1
            else f"{self.path}.{SOURCES_KEY}[{self.index}]"
        )
        self.node.sources[self.index] = _build(old.pipe, self.ctx, None, sub)
        return self.node.sources[self.index].it


def _count(node: _Node) -> _Node:
    if _PROFILING[0] and not getattr(node.pipe, "_shared_in_iteration", False):
        node.it, node.counter = counted(node.it)  # see NOTE [per-stage counts] in _profile.py
        if _PROFILING[1]:
            node.timer = StageTimer(node.counter)
            node.it = timed(node.it, node.timer)  # see NOTE [per-stage timing] in _profile.py
    return node


def _check_name(node: _Node, saved: Any, path: str) -> None:
    if not isinstance(saved, dict) or PIPE_KEY not in saved:
        raise RuntimeError(
            f"load_state_dict: at {path} expected a pipe state dict, got {type(saved).__name__}"
        )
    if saved[PIPE_KEY] != node.name:
        raise RuntimeError(
            f"load_state_dict: the state was taken from a different pipeline: at {path} it holds "
            f"{saved[PIPE_KEY]!r}, but this pipeline has {node.name!r}"
        )


def _sub_state(saved: dict[str, Any], n: int, i: int, path: str, node: _Node) -> Any:
    if n == 1:
        if SOURCE_KEY not in saved:
            raise RuntimeError(
                f"load_state_dict: the state was taken from a different pipeline: at {path} "
                f"{node.name} has one source but the state has none"
            )
        return saved[SOURCE_KEY]
    subs = saved.get(SOURCES_KEY)
    if not isinstance(subs, list) or len(subs) != n:
        got = len(subs) if isinstance(subs, list) else 0
        raise RuntimeError(
            f"load_state_dict: the state was taken from a different pipeline: at {path} "
            f"{node.name} has {n} sources but the state has {got}"
        )
    return subs[i]


def _not_resumable(node: _Node, path: str) -> str:
    return (
        f"state_dict: {node.name} (at {path}) is not resumable: it defines __iter__ as a plain "
        "generator, whose position cannot be saved. Write it with the hooks of a built-in pipe (see "
        "loom.data._datapipe), or let its __iter__ return an iterator with state_dict()/load_state_dict()"
    )


_CHUNK_TAG = "__loom_datachunk__"


def _encode(obj: Any) -> Any:
    """Saved buffers hold user elements; DataChunks in them become tagged dicts (plain data)."""
    kind = type(obj)
    if kind is DataChunk:
        return {_CHUNK_TAG: [_encode(x) for x in obj]}
    if kind is list:
        return [_encode(x) for x in obj]
    if kind is tuple:
        return tuple(_encode(x) for x in obj)
    if kind is dict:
        return {k: _encode(v) for k, v in obj.items()}
    return obj


def _decode(obj: Any) -> Any:
    kind = type(obj)
    if kind is dict:
        if len(obj) == 1 and _CHUNK_TAG in obj:
            return DataChunk(_decode(x) for x in obj[_CHUNK_TAG])
        return {k: _decode(v) for k, v in obj.items()}
    if kind is list:
        return [_decode(x) for x in obj]
    if kind is tuple:
        return tuple(_decode(x) for x in obj)
    return obj


def _save(node: _Node) -> dict[str, Any]:
    if not node.native:
        it = node.state
        if not hasattr(it, "state_dict"):
            raise RuntimeError(_not_resumable(node, node.path))
        return {PIPE_KEY: node.name, STATE_KEY: it.state_dict()}
    if node.guarded:
        with node.pipe._snapshot_guard(node.state):
            return _save_native(node)
    return _save_native(node)


def _save_native(node: _Node) -> dict[str, Any]:
    if node.stateless:
        own: dict[str, Any] = {}
    else:
        own = _encode(node.pipe._save_state(node.state))
    out: dict[str, Any] = {PIPE_KEY: node.name, STATE_KEY: own}
    sources = node.sources
    if len(sources) == 1:
        out[SOURCE_KEY] = _save(sources[0])
    elif sources:
        out[SOURCES_KEY] = [_save(s) for s in sources]
    return out


def _walk(node: _Node, path: str, rows: list[dict[str, Any]]) -> float | None:
    """Append the rows of ``node`` and its sources; return ``node``'s cumulative time (None untimed)."""
    count = produced(node.counter) if node.counter is not None else None
    row: dict[str, Any] = {"path": path, "pipe": node.name, "produced": count}
    rows.append(row)
    timer = node.timer
    spent = timer.time_s() if timer is not None else None
    below = 0.0
    for i, s in enumerate(node.sources):
        sub = f"{path}.{SOURCE_KEY}" if len(node.sources) == 1 else f"{path}.{SOURCES_KEY}[{i}]"
        got = _walk(s, sub, rows)
        below += got or 0.0
    if timer is None or spent is None:
        return below if node.sources else None  # an untimed (shared) stage passes its sources' time up
    row["time_s"] = spent
    row["self_s"] = spent - below
    row["sampled"] = timer.sampled
    return spent


def _count_sharding(node: _Node) -> int:
    own = 1 if getattr(node.pipe, "_is_sharding", False) else 0
    return own + sum(_count_sharding(s) for s in node.sources)


# NOTE [next is the raw chain's own]
# A Python-level ``__next__`` is one Python frame per element, which costs as much as a fast C-level
# chain itself (LineReader: 1.5M lines/s through such a method, 2.6M through the chain). A ``for`` loop
# over a pipe calls ``iter(pipe)`` once and then the iterator type's ``tp_iternext`` slot, which looks
# ``__next__`` up on the *type* at every step. So each PipeIterator gets a private subclass whose
# ``__next__`` is the root's raw ``it.__next__`` (a C method wrapper, not a descriptor, so it is called
# as is): ``next(it)`` and ``for x in pipe`` then run at the chain's speed with no Python frame, while
# ``iter(it) is it``, ``state_dict()``, ``profile()`` all stay as they were (state lives on the nodes'
# side objects; NOTE [how a built-in pipe is written]). ``load_state_dict()`` rebinds the subclass's
# ``__next__`` to the new root, so a loop already running over the iterator continues with the
# restored chain at its next step.
#
# Each iterator gets a fresh class (tens of microseconds per ``iter()``, nothing per element). When an
# iterator is dropped its ``__del__`` unbinds ``__next__``, releasing the chain, with its open files, at
# once. Classes are not reused: a pool of them (returned from ``__del__``) gave fork/unzip children each
# other's elements when the whole tests/data suite ran (tests/data/test_unzip.py::test_resumes), so a
# class may have been handed out while its first iterator was still reachable; not yet understood.
# Copying or pickling an iterator is refused (save ``state_dict()`` instead).


def _released(*_args: Any) -> Any:
    raise StopIteration


class PipeIterator(Iterator[Any]):
    """The iterator of a built-in pipe: ``next``, plus ``state_dict()`` and ``load_state_dict()``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> it = iter(IterableWrapper(range(6)).batch(2))
        >>> next(it)
        [0, 1]
        >>> state = it.state_dict()
        >>> again = iter(IterableWrapper(range(6)).batch(2))
        >>> again.load_state_dict(state)
        >>> list(again)
        [[2, 3], [4, 5]]
    """

    __slots__ = ("_ctx", "_root", "pipe")

    def __new__(cls, pipe: IterDataPipe) -> PipeIterator:
        kind = cls
        if cls is PipeIterator:  # see NOTE [next is the raw chain's own]
            kind = type("PipeIterator", (PipeIterator,), {"__slots__": (), "__module__": cls.__module__})
        it: PipeIterator = super().__new__(kind)
        return it

    def __init__(self, pipe: IterDataPipe) -> None:
        self.pipe = pipe
        self._ctx = Context(pipe)
        self._set_root(_build(pipe, self._ctx, None, "root"))
        _warn_if_unsharded(self._ctx, self._root)

    def _set_root(self, root: _Node) -> None:
        self._root = root
        kind = type(self)
        if kind is not PipeIterator:  # see NOTE [next is the raw chain's own]
            kind.__next__ = root.it.__next__  # type: ignore[method-assign,assignment]

    def __iter__(self) -> PipeIterator:
        return self

    def __next__(self) -> Any:
        return next(self._root.it)  # only a plain PipeIterator's; the pooled subclasses bind the chain's

    def __del__(self) -> None:
        kind = type(self)
        if kind is PipeIterator:
            return
        kind.__next__ = _released  # type: ignore[method-assign,assignment]

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self!r} cannot be copied or pickled: save its state_dict() and restore it into a fresh "
            "iterator with load_state_dict()"
        )

    def state_dict(self) -> dict[str, Any]:
        """The position of this iteration as plain data; see NOTE [iterator state format]."""
        out: dict[str, Any] = {VERSION_KEY: STATE_VERSION}
        out.update(_save(self._root))
        out[RANDOM_KEY] = {pos: list(entry) for pos, entry in self._ctx.random.items()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (taken from the same pipeline): the next element is the one that followed it."""
        if not isinstance(state, dict) or state.get(VERSION_KEY) != STATE_VERSION:
            got = state.get(VERSION_KEY) if isinstance(state, dict) else type(state).__name__
            raise RuntimeError(
                f"load_state_dict: not a loom.data iterator state (version {got!r}, expected {STATE_VERSION})"
            )
        self._ctx.random = {}
        self._ctx.shared = {}
        for pos, entry in state.get(RANDOM_KEY, {}).items():
            seed, epoch, starts = (int(v) for v in entry)
            self._ctx.random[int(pos)] = [seed, epoch, starts]
            pipe = self._ctx.pipe_at(int(pos))
            if epoch >= 0 and pipe is not None:
                pipe._epoch = epoch + 1  # the next epoch after this one, as in the original run
        self._set_root(_build(self.pipe, self._ctx, state, "root"))

    def profile(self) -> list[dict[str, Any]]:
        """Per stage, from the output down: path, pipe name, elements produced (None unless profiling).

        With ``profiling(timing=True)``, rows also hold ``time_s``, ``self_s`` (estimates) and ``sampled``;
        see NOTE [per-stage timing] in _profile.py.
        """
        rows: list[dict[str, Any]] = []
        _walk(self._root, "root", rows)
        return rows

    def __repr__(self) -> str:
        return f"<iterator of {self.pipe!r}>"


# NOTE [which worker iterations warn about a missing sharding_filter]
# The check walks the pipe graph (traverse_dps), not the built nodes, so it sees through user pipes with a
# generator __iter__ and through fork/demux containers. A user pipe iterates its source with a pipeline of
# its own; that inner iteration is covered when an enclosing pipeline already holds a sharding_filter, so
# every pipe of a sharded graph is remembered (weakly) for the rest of the worker's life.
_COVERED_BY_SHARDING: weakref.WeakSet[Any] = weakref.WeakSet()


def _graph_has_sharding(pipe: Any) -> bool:
    from loom.data._graph import list_dps, traverse_dps

    pipes = list_dps(traverse_dps(pipe))
    if not any(getattr(p, "_is_sharding", False) for p in pipes):
        return False
    for p in pipes:
        with contextlib.suppress(TypeError):  # a pipe that cannot be weakly referenced is not remembered
            _COVERED_BY_SHARDING.add(p)
    return True


def _warn_if_unsharded(ctx: Context, root: _Node) -> None:
    if ctx.worker is None or ctx.worker.num_workers <= 1:
        return
    if root.pipe in _COVERED_BY_SHARDING or _graph_has_sharding(root.pipe) or _count_sharding(root) > 0:
        return
    warnings.warn(
        f"{root.name}: iterated in DataLoader worker {ctx.worker.id} of {ctx.worker.num_workers} "
        "but the pipeline has no sharding_filter, so every worker yields every element; add "
        ".sharding_filter() after the source",
        RuntimeWarning,
        stacklevel=3,
    )
