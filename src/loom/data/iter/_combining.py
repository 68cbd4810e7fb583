"""Pipes that read several sources into one: Concater, Zipper, ZipperLongest, Multiplexer,
MultiplexerLongest, SampleMultiplexer."""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._combinatorics import rng_from_state, rng_state
from loom.data.iter._common import Pending, load_list

__all__ = [
    "Concater",
    "Multiplexer",
    "MultiplexerLongest",
    "SampleMultiplexer",
    "Zipper",
    "ZipperLongest",
]


def check_pipes(call: str, datapipes: tuple[Any, ...], minimum: int = 1) -> None:
    if len(datapipes) < minimum:
        raise ValueError(f"{call}: expected at least {minimum} IterDataPipe(s), got {len(datapipes)}")
    for i, dp in enumerate(datapipes):
        if not isinstance(dp, IterDataPipe):
            raise TypeError(
                f"{call}: every input must be an IterDataPipe, got {type(dp).__name__} at position {i}"
            )


def lengths(pipe: Any, datapipes: Any) -> list[int]:
    """``len`` of every source, or a TypeError naming ``pipe`` and the first source without one."""
    out = []
    for dp in datapipes:
        try:
            out.append(len(dp))
        except TypeError as err:
            raise TypeError(
                f"{type(pipe).__name__} instance doesn't have valid length: its source {type(dp).__name__} has none"
            ) from err
    return out


def load_int(call: str, data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuntimeError(
            f"load_state_dict: {call} expects an int {key!r} in [{low}, {high}], got {value!r}"
        )
    return value


def load_flags(call: str, data: dict[str, Any], key: str, n: int) -> list[bool]:
    flags = load_list(call, data, key)
    if len(flags) != n:
        raise RuntimeError(f"load_state_dict: {call} expects {n} flags in {key!r}, got {len(flags)}")
    return [bool(f) for f in flags]


class _Position:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


@functional_datapipe("concat")
class Concater(IterDataPipe):
    """Yields every element of the first pipe, then of the next ones (functional name: ``concat``).

    Args:
        *datapipes: the IterDataPipes, at least one.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(3)).concat(IterableWrapper(range(2))))
        [0, 1, 2, 0, 1]
    """

    def __init__(self, *datapipes: IterDataPipe) -> None:
        check_pipes("concat", datapipes)
        self.datapipes = datapipes

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _init_state(self, ctx: Any) -> _Position:
        return _Position(0)

    def _iterate(self, srcs: list[Iterator[Any]], state: _Position) -> Iterator[Any]:
        return self._run(srcs, state)

    @staticmethod
    def _run(srcs: list[Iterator[Any]], state: _Position) -> Iterator[Any]:
        for k in range(state.index, len(srcs)):
            state.index = k
            yield from srcs[k]
        state.index = len(srcs)

    def _save_state(self, state: _Position) -> dict[str, Any]:
        return {"current": state.index}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Position:
        return _Position(load_int("Concater", data, "current", 0, len(self.datapipes)))

    def __len__(self) -> int:
        return sum(lengths(self, self.datapipes))


@functional_datapipe("zip")
class Zipper(IterDataPipe):
    """Tuples of one element from each pipe, until the shortest ends (functional name: ``zip``).

    The sources' own states say where each one is, so the zipper keeps no state of its own.

    Args:
        *datapipes: the IterDataPipes.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(3)).zip(IterableWrapper("abcd")))
        [(0, 'a'), (1, 'b'), (2, 'c')]
    """

    def __init__(self, *datapipes: IterDataPipe) -> None:
        check_pipes("zip", datapipes, minimum=0)
        self.datapipes = datapipes

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return zip(*srcs)

    def __len__(self) -> int:
        return min(lengths(self, self.datapipes), default=0)


@functional_datapipe("zip_longest")
class ZipperLongest(IterDataPipe):
    """Tuples of one element from each pipe until all end; ended pipes give ``fill_value`` (functional name: ``zip_longest``).

    Args:
        *datapipes: the IterDataPipes.
        fill_value: stands in for the elements of pipes that have ended.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(1)).zip_longest(IterableWrapper("ab"), fill_value=-1))
        [(0, 'a'), (-1, 'b')]
    """

    _repr_fields = ("fill_value",)

    def __init__(self, *datapipes: IterDataPipe, fill_value: Any = None) -> None:
        check_pipes("zip_longest", datapipes, minimum=0)
        self.datapipes = datapipes
        self.fill_value = fill_value

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        # An ended source keeps raising StopIteration when asked again (after a restore too), so
        # itertools.zip_longest needs no state of ours.
        return zip_longest(*srcs, fillvalue=self.fill_value)

    def __len__(self) -> int:
        return max(lengths(self, self.datapipes), default=0)


def _mux(srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
    # A round is taken whole (zip) and handed out through Pending, so a round cut short by an ended
    # source is dropped entirely, as in torchdata.
    yield from state.it
    for round_ in zip(*srcs):
        yield from state.reset(list(round_))


@functional_datapipe("mux")
class Multiplexer(IterDataPipe):
    """One element from each pipe in turn, until the shortest ends (functional name: ``mux``).

    Rounds are complete: if a pipe ends during a round, that round's earlier elements are dropped.

    Args:
        *datapipes: the IterDataPipes.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(3)).mux(IterableWrapper(range(10, 12))))
        [0, 10, 1, 11]
    """

    def __init__(self, *datapipes: IterDataPipe) -> None:
        check_pipes("mux", datapipes, minimum=0)
        self.datapipes = datapipes

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return _mux(srcs, state) if srcs else iter(())

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": list(state.remaining())}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        pending = load_list("Multiplexer", data, "pending")
        if len(pending) >= max(len(self.datapipes), 1):
            raise RuntimeError(
                f"load_state_dict: Multiplexer holds at most {len(self.datapipes) - 1} pending elements, got {len(pending)}"
            )
        return Pending(pending)

    def __len__(self) -> int:
        return min(lengths(self, self.datapipes), default=0) * len(self.datapipes)


class _MuxState:
    __slots__ = ("finished", "next")

    def __init__(self, next_: int, finished: list[bool]) -> None:
        self.next = next_
        self.finished = finished


def _mux_longest(srcs: list[Iterator[Any]], state: _MuxState) -> Iterator[Any]:
    n = len(srcs)
    finished = state.finished
    while not all(finished):
        for i in range(state.next, n):
            if finished[i]:
                continue
            try:
                x = next(srcs[i])
            except StopIteration:
                finished[i] = True
                continue
            state.next = i + 1
            yield x
        state.next = 0


@functional_datapipe("mux_longest")
class MultiplexerLongest(IterDataPipe):
    """One element from each pipe in turn, skipping ended pipes, until all end (functional name: ``mux_longest``).

    Args:
        *datapipes: the IterDataPipes.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(3)).mux_longest(IterableWrapper(range(10, 11))))
        [0, 10, 1, 2]
    """

    def __init__(self, *datapipes: IterDataPipe) -> None:
        check_pipes("mux_longest", datapipes, minimum=0)
        self.datapipes = datapipes

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _init_state(self, ctx: Any) -> _MuxState:
        return _MuxState(0, [False] * len(self.datapipes))

    def _iterate(self, srcs: list[Iterator[Any]], state: _MuxState) -> Iterator[Any]:
        return _mux_longest(srcs, state)

    def _save_state(self, state: _MuxState) -> dict[str, Any]:
        return {"next": state.next, "finished": list(state.finished)}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _MuxState:
        n = len(self.datapipes)
        return _MuxState(
            load_int("MultiplexerLongest", data, "next", 0, n),
            load_flags("MultiplexerLongest", data, "finished", n),
        )

    def __len__(self) -> int:
        return sum(lengths(self, self.datapipes))


class _SampleState:
    __slots__ = ("active", "rng", "weights")

    def __init__(self, rng: random.Random, active: list[int], weights: list[float]) -> None:
        self.rng = rng
        self.active = active
        self.weights = weights


class SampleMultiplexer(IterDataPipe):
    """Yields from pipes picked at random by weight; ended pipes drop out and the rest are renormalized.

    As torchdata's ``SampleMultiplexer``: each step draws a pipe with probability proportional to
    its weight among the pipes not yet ended; when only one is left, its remaining elements follow.
    The seed comes from ``seed`` or the graph (``set_graph_random_seed``); each epoch draws anew.

    Args:
        pipes_to_weights_dict: ``{pipe: weight}`` with positive weights.
        seed: seeds the draws (epochs still differ, reproducibly); ``None`` uses the graph's seeding.

    Example:
        >>> from loom.data.iter import IterableWrapper, SampleMultiplexer
        >>> pipe = SampleMultiplexer({IterableWrapper([0] * 3): 1.0, IterableWrapper([1] * 2): 1.0}, seed=0)
        >>> sorted(pipe)
        [0, 0, 0, 1, 1]
    """

    _is_random = True

    def __init__(self, pipes_to_weights_dict: dict[IterDataPipe, float], seed: int | None = None) -> None:
        if not isinstance(pipes_to_weights_dict, dict) or not pipes_to_weights_dict:
            raise ValueError(
                f"SampleMultiplexer: pipes_to_weights_dict must be a non-empty dict, got {pipes_to_weights_dict!r}"
            )
        check_pipes("SampleMultiplexer", tuple(pipes_to_weights_dict))
        total = 0.0
        for dp, w in pipes_to_weights_dict.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise ValueError(
                    f"SampleMultiplexer: weights must be positive numbers, got {w!r} for {type(dp).__name__}"
                )
            total += w
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"SampleMultiplexer: seed must be an int or None, got {seed!r}")
        self.datapipes = tuple(pipes_to_weights_dict)
        self.weights = [w / total for w in pipes_to_weights_dict.values()]
        self._seed = seed
        self._epoch = 0

    def _sources(self) -> tuple[Any, ...]:
        return self.datapipes

    def _init_state(self, ctx: Any) -> _SampleState:
        return _SampleState(
            random.Random(ctx.seed_for(self)), list(range(len(self.datapipes))), list(self.weights)
        )

    def _iterate(self, srcs: list[Iterator[Any]], state: _SampleState) -> Iterator[Any]:
        return self._run(srcs, state)

    @staticmethod
    def _run(srcs: list[Iterator[Any]], state: _SampleState) -> Iterator[Any]:
        # Same draws as torchdata: one random() per step against the cumulative weights.
        rand = state.rng.random
        while len(state.active) > 1:
            r = rand()
            s = 0.0
            for k, w in enumerate(state.weights):
                s += w
                if r < s:
                    try:
                        x = next(srcs[state.active[k]])
                    except StopIteration:
                        rest = 1 - w
                        state.weights = [v / rest for j, v in enumerate(state.weights) if j != k]
                        del state.active[k]
                        break
                    yield x
                    break
        if state.active:
            yield from srcs[state.active[0]]

    def _save_state(self, state: _SampleState) -> dict[str, Any]:
        return {"active": list(state.active), "weights": list(state.weights), "rng": rng_state(state.rng)}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _SampleState:
        active = load_list("SampleMultiplexer", data, "active")
        weights = load_list("SampleMultiplexer", data, "weights")
        n = len(self.datapipes)
        if len(active) != len(weights) or not all(isinstance(a, int) and 0 <= a < n for a in active):
            raise RuntimeError(f"load_state_dict: SampleMultiplexer got an invalid state {data!r}")
        return _SampleState(
            rng_from_state("SampleMultiplexer", data.get("rng")), active, [float(w) for w in weights]
        )

    def __len__(self) -> int:
        return sum(lengths(self, self.datapipes))
