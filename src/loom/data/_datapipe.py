"""The DataPipe base classes, the functional registry, pickling, and the pipe-author hooks.

# NOTE [how a built-in pipe is written]
# A built-in ("native") IterDataPipe does not override ``__iter__``. It describes one live iteration
# with four small hooks, and the base machinery in ``_iterator.py`` wires them into a chain:
#
#   _sources(self) -> tuple            the upstream pipes it iterates (default:
#                                      ``(self.source_datapipe,)``); a MapDataPipe read by index
#                                      (zip_with_map) is not one of them
#   _init_state(self, ctx) -> state    a fresh side object for one iteration (default: ``None``);
#                                      ``ctx.seed_for(self)`` gives random pipes their seed,
#                                      ``ctx.shard`` the (num_shards, shard_index) in effect upstream
#   _iterate(self, srcs, state)        the raw iterator for one iteration, given the raw iterators of
#                                      the sources: a builtin (``map``, ``islice``) or a generator
#   _save_state(self, state) -> dict   plain data (numbers, strings, lists, dicts, tensors) that
#   _load_state(self, data, ctx)       ... ``_load_state`` turns back into a side object
#
# and, rarely:
#   _snapshot_guard(self, state)       a context manager held while this pipe and its sources are
#                                      saved (Prefetcher pauses its background thread with it)
#   _restarts_sources = True           ``_iterate`` then gets SourceHandles (``.it``, ``.restart()``)
#                                      instead of iterators, to run its sources for several epochs
#   _is_random = True                  the pipe is seeded by set_graph_random_seed (see _random.py)
#   _shared_in_iteration = True        one node per iteration however many readers reach the pipe
#                                      (the hidden container behind fork/demux children): its
#                                      ``_iterate`` may return any object (say, one with per-child
#                                      buffers) that the readers' ``_iterate`` knows how to use, and
#                                      its state is saved under each reader (the copies are equal;
#                                      the first one found is loaded)
#
# Several sources: ``_sources()`` returns them all; ``_iterate`` gets their raw iterators in that
# order and the state nests them as a list under "sources" (zip, concat, mux).
#
# Raise bad-argument errors in ``__init__`` (``ValueError("header: limit must be >= 0, got -1")``),
# check loaded state in ``_load_state`` (RuntimeError naming the pipe), keep the same state keys at
# every step, and end the pipe's test with ``assert_resumes_identically`` (tests/data/_checks.py).
# A pipe that builds on others can return a composed pipeline from ``__new__`` (BucketBatcher).
#
# State lives on the side object, never in generator locals: a generator updates it *before* each
# ``yield``, so when the user calls ``state_dict()`` (always between two ``next`` calls, with every
# generator of the chain suspended) the side objects describe exactly what has not been produced yet.
# In particular an element taken from a source must be in the side object before the next ``yield``
# (hold it in a local across a yield and a snapshot there loses it; the resume check catches this).
# Saved buffers hold user elements as they are: plain data stays plain (DataChunks are tagged and
# restored); ``_data_attrs`` names attributes holding user data that the graph walk must not scan.
# Restoring rebuilds the chain from loaded side objects; nothing is replayed. Stateless stages (map,
# filter) need no side object and run as builtins, so a chain costs close to bare generators.
# See NOTE [iterator state format] in _iterator.py for the nesting of state dicts.
#
# A user subclass that overrides ``__iter__`` (torchdata's tutorial style, a plain generator) works
# everywhere, chains with ``.map`` and friends, and runs in DataLoader; only asking for the state of an
# iterator that passes through it is an error, since a generator's position cannot be saved. If its
# ``__iter__`` returns an object with ``state_dict()``/``load_state_dict()``, that object is used.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from torch.utils.data import Dataset, IterableDataset

__all__ = ["DataChunk", "IterDataPipe", "MapDataPipe", "functional_datapipe"]

T = TypeVar("T")

try:  # optional: pickling lambdas
    import dill as _dill
except ImportError:  # pragma: no cover - dill is a test dependency
    _dill = None


def _dill_available() -> bool:
    return _dill is not None


class DataChunk(list):  # type: ignore[type-arg]
    """A batch: a ``list`` subclass, as produced by ``.batch()`` (torchdata's ``DataChunk``).

    Example:
        >>> from loom.data import DataChunk
        >>> DataChunk([1, 2]) == [1, 2]
        True
    """

    @property
    def items(self) -> list[Any]:
        return list(self)

    def as_str(self, indent: str = "") -> str:
        return indent + "[" + ", ".join(str(i) for i in self) + "]"

    def raw_iterator(self) -> Iterator[Any]:
        return list.__iter__(self)


class _DillBox:
    """Pickles one value with dill; unpickling needs dill and yields the value itself."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        assert _dill is not None
        return (_dill.loads, (self.payload,))


def _describe(value: Any) -> str:
    if isinstance(value, functools.partial):
        return f"functools.partial({_describe(value.func)}, ...)"
    return getattr(value, "__qualname__", None) or repr(value)


class _PipeBase:
    """Shared by IterDataPipe and MapDataPipe: repr, pickling, functional registry, graph hooks."""

    _repr_fields: tuple[str, ...] = ()
    _data_attrs: tuple[str, ...] = ()  # attributes holding user data, skipped by the graph walk

    def __repr__(self) -> str:
        parts = []
        for name in self._repr_fields:
            value = getattr(self, name, None)
            shown = _describe(value) if callable(value) and not isinstance(value, _PipeBase) else repr(value)
            parts.append(f"{name}={shown}")
        return f"{type(self).__qualname__}({', '.join(parts)})"

    __str__ = __repr__

    def __getstate__(self) -> dict[str, Any]:
        # NOTE [pickling functions]: plain pickle cannot store lambdas or local functions. Each
        # callable attribute is tried with pickle; one that fails goes through dill when installed,
        # otherwise pickling stops with an error that names the pipe, the attribute and the fix.
        state = dict(self.__dict__)
        for key, value in state.items():
            if not callable(value) or isinstance(value, (type, _PipeBase)):
                continue
            try:
                pickle.dumps(value)
            except (pickle.PicklingError, AttributeError, TypeError) as err:
                if _dill is None:
                    raise pickle.PicklingError(
                        f"cannot pickle {type(self).__name__}: its {key}={_describe(value)} is a lambda "
                        "or local function; install `dill` or use a module-level function or "
                        "functools.partial"
                    ) from err
                state[key] = _DillBox(_dill.dumps(value, recurse=True))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class IterDataPipe(IterableDataset, _PipeBase):  # type: ignore[type-arg]
    """Iterable-style DataPipe: an ``IterableDataset`` that chains with functional methods.

    Subclass it and define ``__iter__`` (a plain generator is fine), or, for a resumable pipe, the hooks
    of NOTE [how a built-in pipe is written]. Register a functional name with ``@functional_datapipe``.

    Example:
        >>> from loom.data import IterDataPipe
        >>> from loom.data.iter import IterableWrapper
        >>> class Double(IterDataPipe):
        ...     def __init__(self, source):
        ...         self.source = source
        ...     def __iter__(self):
        ...         for x in self.source:
        ...             yield 2 * x
        >>> list(Double(IterableWrapper(range(3))).map(lambda x: x + 1))
        [1, 3, 5]
    """

    # Random pipes set these; see _random.py.
    _is_random: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # As in torch: a custom pipe's ``reset()`` runs each time a new iterator is made.
        if "__iter__" in vars(cls) and cls.reset is not IterDataPipe.reset:
            inner = vars(cls)["__iter__"]
            if getattr(inner, "_loom_resets", False):
                return

            @functools.wraps(inner)
            def __iter__(self: Any) -> Any:
                self.reset()
                return inner(self)

            __iter__._loom_resets = True  # type: ignore[attr-defined]
            cls.__iter__ = __iter__  # type: ignore[method-assign]

    def reset(self) -> None:
        """Called before each new iterator of a custom pipe that overrides it (torch's hook)."""

    def __iter__(self) -> Iterator[Any]:
        from loom.data._iterator import PipeIterator

        return PipeIterator(self)

    # --- hooks for native pipes; see NOTE [how a built-in pipe is written] ---
    def _sources(self) -> tuple[Any, ...]:
        src = self.__dict__.get("source_datapipe")
        return () if src is None else (src,)

    def _init_state(self, ctx: Any) -> Any:
        return None

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        raise NotImplementedError(
            f"{type(self).__name__} is an IterDataPipe without __iter__: define __iter__ (for example a "
            "generator) or the hooks described in loom.data._datapipe"
        )

    def _save_state(self, state: Any) -> dict[str, Any]:
        return {}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Any:
        if data:
            raise RuntimeError(
                f"load_state_dict: {type(self).__name__} keeps no state but got keys {sorted(data)}"
            )
        return self._init_state(ctx)

    def _snapshot_guard(self, state: Any) -> Any:
        return contextlib.nullcontext()

    def _source_len(self) -> int:
        """``len`` of the single source, or a TypeError that says which pipe has no length."""
        src = self.__dict__.get("source_datapipe")
        try:
            return len(src)  # type: ignore[arg-type]
        except TypeError as err:
            raise TypeError(
                f"{type(self).__name__} instance doesn't have valid length: its source "
                f"{type(src).__name__} has none"
            ) from err


def _is_native(pipe: object) -> bool:
    return isinstance(pipe, IterDataPipe) and type(pipe).__iter__ is IterDataPipe.__iter__


class MapDataPipe(Dataset, _PipeBase):  # type: ignore[type-arg]
    """Map-style DataPipe: a ``Dataset`` with ``__getitem__`` and ``__len__`` that chains functionally.

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> SequenceWrapper([1, 2, 3]).map(lambda x: x * 10)[2]
        30
    """

    def __class_getitem__(cls, item: Any) -> Any:
        return cls  # ``MapDataPipe[int]`` in subclass lists and annotations, as with torchdata

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} instance doesn't have valid length")

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]


_REGISTRY: dict[tuple[type, str], type] = {}


def functional_datapipe(name: str) -> Callable[[type[T]], type[T]]:
    """Register a DataPipe class as a chainable method, so ``pipe.name(*args)`` means ``Cls(pipe, *args)``.

    Args:
        name: the method name, e.g. ``"map"``. A name may be registered once per base class
            (IterDataPipe or MapDataPipe); registering another class under a taken name is an error.

    Returns:
        A class decorator that returns the class unchanged.

    Raises:
        TypeError: the decorated class is not an IterDataPipe or MapDataPipe subclass.
        ValueError: the name is not an identifier or is already taken by another class.

    Example:
        >>> from loom.data import IterDataPipe, functional_datapipe
        >>> from loom.data.iter import IterableWrapper
        >>> @functional_datapipe("twice")
        ... class Twice(IterDataPipe):
        ...     def __init__(self, source_datapipe):
        ...         self.source_datapipe = source_datapipe
        ...     def __iter__(self):
        ...         for x in self.source_datapipe:
        ...             yield x
        ...             yield x
        >>> list(IterableWrapper([1, 2]).twice())
        [1, 1, 2, 2]
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"functional_datapipe: name must be an identifier, got {name!r}")

    def register(cls: type[T]) -> type[T]:
        if not isinstance(cls, type) or not issubclass(cls, (IterDataPipe, MapDataPipe)):
            raise TypeError(
                f"functional_datapipe({name!r}): {cls!r} is not an IterDataPipe or MapDataPipe subclass"
            )
        base: type = IterDataPipe if issubclass(cls, IterDataPipe) else MapDataPipe
        register_as(base, name, cls)
        return cls

    return register


def register_as(base: type, name: str, cls: type) -> None:
    """Make ``base_instance.name(*args)`` mean ``cls(base_instance, *args)``; see ``functional_datapipe``.

    Converters register across kinds: ``IterDataPipe.to_map_datapipe`` builds a MapDataPipe.
    """
    taken = _REGISTRY.get((base, name))
    same = taken is not None and (taken.__module__, taken.__qualname__) == (cls.__module__, cls.__qualname__)
    if taken is not None and not same:
        raise ValueError(f"functional_datapipe({name!r}): the name is already taken by {taken.__qualname__}")
    if taken is None and name in vars(base):
        raise ValueError(f"functional_datapipe({name!r}): {base.__name__} already has an attribute {name!r}")
    _REGISTRY[(base, name)] = cls

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return cls(self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"{base.__name__}.{name}"
    method.__doc__ = f"Functional form of :class:`{cls.__qualname__}`.\n\n{cls.__doc__ or ''}"
    setattr(base, name, method)
