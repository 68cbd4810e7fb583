"""Random pipes: Shuffler, InBatchShuffler, ShuffledFlatMapper; and Sampler."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import DataChunk, IterDataPipe, functional_datapipe
from loom.data.iter._common import Pending

__all__ = ["InBatchShuffler", "Sampler", "ShuffledFlatMapper", "Shuffler"]


def rng_state(rng: random.Random) -> list[Any]:
    """A ``random.Random`` state as plain lists of ints (torch.save / weights_only friendly)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(call: str, data: Any) -> random.Random:
    try:
        version, internal, gauss = data
        rng = random.Random()
        rng.setstate((int(version), tuple(int(v) for v in internal), gauss))
    except (TypeError, ValueError) as err:
        raise RuntimeError(f"load_state_dict: {call} got an invalid RNG state") from err
    return rng


class _ShuffleState:
    __slots__ = ("buffer", "draining", "rng")

    def __init__(self, rng: random.Random, buffer: list[Any], draining: bool) -> None:
        self.rng = rng
        self.buffer = buffer
        self.draining = draining


@functional_datapipe("shuffle")
class Shuffler(IterDataPipe):
    """Shuffles with a buffer of ``buffer_size`` elements (functional name: ``shuffle``).

    Buffered shuffling as in torchdata: the first ``buffer_size`` elements fill the buffer; then
    each new element replaces a random one, which is yielded; at the end the buffer drains in random
    order. Every epoch reshuffles; the seed comes from the graph (see ``set_graph_random_seed``).
    The buffer and the random state are part of the iterator state, so a restored iterator continues
    exactly, without replaying.

    Args:
        datapipe: the source pipe.
        buffer_size: the buffer's bound, at least 1 (1 keeps the order).
        unbatch_level: unbatch the source this many levels first.

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = set_graph_random_seed(IterableWrapper(range(5)).shuffle(), 0)
        >>> sorted(pipe)
        [0, 1, 2, 3, 4]
    """

    _is_random = True
    _repr_fields = ("buffer_size",)

    def __init__(self, datapipe: Any, *, buffer_size: int = 10000, unbatch_level: int = 0) -> None:
        check_source("shuffle", datapipe)
        check_int("shuffle", "buffer_size", buffer_size, 1)
        check_int("shuffle", "unbatch_level", unbatch_level, -1)
        self.source_datapipe = (
            datapipe if unbatch_level == 0 else datapipe.unbatch(unbatch_level=unbatch_level)
        )
        self.buffer_size = buffer_size
        self._enabled = True
        self._seed: int | None = None
        self._epoch = 0

    def set_shuffle(self, shuffle: bool = True) -> Shuffler:
        """Switch shuffling on or off (off: elements pass through in order); returns ``self``."""
        self._enabled = bool(shuffle)
        return self

    def set_seed(self, seed: int) -> Shuffler:
        """Seed this shuffler (epochs still differ, reproducibly); returns ``self``."""
        check_int("shuffle.set_seed", "seed", seed, -(2**63))
        self._seed = seed
        self._epoch = 0
        return self

    def _init_state(self, ctx: Any) -> _ShuffleState | None:
        if not self._enabled:
            return None
        return _ShuffleState(random.Random(ctx.seed_for(self)), [], False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _ShuffleState | None) -> Iterator[Any]:
        return srcs[0] if state is None else self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: _ShuffleState) -> Iterator[Any]:
        buffer = state.buffer
        rand = state.rng.random
        size = self.buffer_size
        if not state.draining:
            for x in src:
                if len(buffer) == size:
                    i = int(rand() * size)
                    out = buffer[i]
                    buffer[i] = x
                    yield out
                else:
                    buffer.append(x)
            state.draining = True
        while buffer:
            i = int(rand() * len(buffer))
            out = buffer[i]
            buffer[i] = buffer[-1]
            buffer.pop()
            yield out

    def _save_state(self, state: _ShuffleState | None) -> dict[str, Any]:
        if state is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "buffer": list(state.buffer),
            "draining": state.draining,
            "rng": rng_state(state.rng),
        }

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _ShuffleState | None:
        if bool(data.get("enabled")) != self._enabled:
            raise RuntimeError(
                f"load_state_dict: Shuffler state has enabled={data.get('enabled')!r} but this shuffler has "
                f"enabled={self._enabled}"
            )
        if not self._enabled:
            return None
        buffer = data.get("buffer")
        if not isinstance(buffer, list) or len(buffer) > self.buffer_size:
            raise RuntimeError(
                f"load_state_dict: Shuffler expects a 'buffer' list of at most {self.buffer_size} elements"
            )
        return _ShuffleState(
            rng_from_state("Shuffler", data.get("rng")), list(buffer), bool(data.get("draining"))
        )

    def __len__(self) -> int:
        return self._source_len()


class _InBatchState:
    __slots__ = ("rng",)

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng


@functional_datapipe("in_batch_shuffle")
class InBatchShuffler(IterDataPipe):
    """Shuffles the items inside each batch (functional name: ``in_batch_shuffle``).

    Seeded from the graph like ``Shuffler``; every epoch reshuffles.

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = set_graph_random_seed(IterableWrapper(range(6)).batch(3).in_batch_shuffle(), 0)
        >>> [sorted(b) for b in pipe]
        [[0, 1, 2], [3, 4, 5]]
    """

    _is_random = True

    def __init__(self, datapipe: Any) -> None:
        check_source("in_batch_shuffle", datapipe)
        self.source_datapipe = datapipe
        self._enabled = True
        self._seed: int | None = None
        self._epoch = 0

    set_shuffle = Shuffler.set_shuffle
    set_seed = Shuffler.set_seed

    def _init_state(self, ctx: Any) -> _InBatchState | None:
        return _InBatchState(random.Random(ctx.seed_for(self))) if self._enabled else None

    def _iterate(self, srcs: list[Iterator[Any]], state: _InBatchState | None) -> Iterator[Any]:
        if state is None:
            return srcs[0]
        sample = state.rng.sample
        return map(lambda batch: DataChunk(sample(batch, len(batch))), srcs[0])

    def _save_state(self, state: _InBatchState | None) -> dict[str, Any]:
        return {"enabled": False} if state is None else {"enabled": True, "rng": rng_state(state.rng)}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _InBatchState | None:
        if bool(data.get("enabled")) != self._enabled:
            raise RuntimeError(f"load_state_dict: InBatchShuffler state has enabled={data.get('enabled')!r}")
        return _InBatchState(rng_from_state("InBatchShuffler", data.get("rng"))) if self._enabled else None

    def __len__(self) -> int:
        return self._source_len()


class _FlatShuffleState:
    __slots__ = ("buffer", "draining", "index", "rng")

    def __init__(self, rng: random.Random, buffer: list[Pending], index: int, draining: bool) -> None:
        self.rng = rng
        self.buffer = buffer
        self.index = index
        self.draining = draining


@functional_datapipe("shuffled_flatmap")
class ShuffledFlatMapper(IterDataPipe):
    """Like ``flatmap``, but interleaves the outputs of up to ``buffer_size`` elements at random (functional name: ``shuffled_flatmap``).

    Args:
        datapipe: the source pipe.
        fn: returns an iterable for each element (read whole); ``None`` uses the element.
        input_col: index/key(s) selecting ``fn``'s arguments.
        buffer_size: how many elements' outputs are open at once, at least 1.

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = set_graph_random_seed(IterableWrapper([[1, 2], [3, 4]]).shuffled_flatmap(), 0)
        >>> sorted(pipe)
        [1, 2, 3, 4]
    """

    _is_random = True
    _repr_fields = ("fn", "buffer_size")

    def __init__(self, datapipe: Any, fn: Any = None, input_col: Any = None, buffer_size: int = 100) -> None:
        from loom.data._columns import check_fn, check_input_col
        from loom.data.iter._callable import _no_op

        check_source("shuffled_flatmap", datapipe)
        self._no_op_fn = fn is None
        fn = _no_op if fn is None else fn
        check_fn("shuffled_flatmap", "fn", fn)
        if input_col is not None:
            check_input_col("shuffled_flatmap", fn, input_col)
        check_int("shuffled_flatmap", "buffer_size", buffer_size, 1)
        self.source_datapipe = datapipe
        self.fn = fn
        self.input_col = input_col
        self.buffer_size = buffer_size
        self._enabled = True
        self._seed: int | None = None
        self._epoch = 0

    set_shuffle = Shuffler.set_shuffle
    set_seed = Shuffler.set_seed

    def _init_state(self, ctx: Any) -> _FlatShuffleState | Pending:
        if not self._enabled:
            return Pending([])
        rng = random.Random(ctx.seed_for(self))
        return _FlatShuffleState(rng, [], rng.randrange(self.buffer_size), False)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        from loom.data._columns import column_selector
        from loom.data.iter._callable import _flatmap

        fn = column_selector(self.fn, self.input_col)
        if isinstance(state, Pending):
            return _flatmap(srcs[0], fn, state)
        return self._run(srcs[0], fn, state)

    def _run(self, src: Iterator[Any], fn: Any, state: _FlatShuffleState) -> Iterator[Any]:
        buffer = state.buffer
        size = self.buffer_size
        randrange = state.rng.randrange
        if not state.draining:
            # Each element goes into the buffer the moment it is taken from the source, so no
            # taken element ever waits outside the saved state.
            while True:
                while len(buffer) == size:
                    out = next(buffer[state.index].it, _END)
                    if out is _END:
                        buffer.pop(state.index)
                    else:
                        state.index = randrange(size)
                        yield out
                x = next(src, _END)
                if x is _END:
                    break
                buffer.append(Pending(list(fn(x))))
            state.draining = True
        while buffer:
            i = randrange(len(buffer))
            out = next(buffer[i].it, _END)
            if out is _END:
                buffer.pop(i)
            else:
                yield out

    def _save_state(self, state: Any) -> dict[str, Any]:
        if isinstance(state, Pending):
            return {"enabled": False, "pending": state.remaining()}
        return {
            "enabled": True,
            "buffer": [p.remaining() for p in state.buffer],
            "index": state.index,
            "draining": state.draining,
            "rng": rng_state(state.rng),
        }

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Any:
        from loom.data.iter._common import load_list

        if bool(data.get("enabled")) != self._enabled:
            raise RuntimeError(
                f"load_state_dict: ShuffledFlatMapper state has enabled={data.get('enabled')!r}"
            )
        if not self._enabled:
            return Pending(load_list("ShuffledFlatMapper", data, "pending"))
        buffer = load_list("ShuffledFlatMapper", data, "buffer")
        if len(buffer) > self.buffer_size:
            raise RuntimeError(
                f"load_state_dict: ShuffledFlatMapper expects at most {self.buffer_size} open outputs"
            )
        rng = rng_from_state("ShuffledFlatMapper", data.get("rng"))
        return _FlatShuffleState(
            rng, [Pending(list(b)) for b in buffer], int(data.get("index", 0)), bool(data.get("draining"))
        )

    def __len__(self) -> int:
        if self._no_op_fn:
            return sum(map(len, self.source_datapipe))
        raise TypeError(f"{type(self).__name__}'s length relies on the output of its function")


_END = object()


class _SamplerState:
    __slots__ = ("pending",)

    def __init__(self, pending: Pending) -> None:
        self.pending = pending


class Sampler(IterDataPipe):
    """Yields what a ``torch.utils.data.Sampler`` built over the source yields (torch's ``Sampler`` pipe).

    As in torch, the sampler gets the source pipe as ``data_source``; with the default
    ``SequentialSampler`` this yields the indices ``0 .. len(source) - 1``. The sampler's output for an
    epoch is drawn when the epoch starts, and its remainder is the iterator state.

    Args:
        datapipe: a source with ``len()``.
        sampler: a Sampler class.
        sampler_args: positional arguments for it.
        sampler_kwargs: keyword arguments for it.

    Example:
        >>> from loom.data.iter import IterableWrapper, Sampler
        >>> list(Sampler(IterableWrapper("abc")))
        [0, 1, 2]
    """

    def __init__(
        self,
        datapipe: Any,
        sampler: Any = None,
        sampler_args: tuple[Any, ...] | None = None,
        sampler_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from torch.utils.data import SequentialSampler

        try:
            len(datapipe)
        except TypeError as err:
            raise TypeError(f"Sampler: the source must have a length, got {type(datapipe).__name__}") from err
        self.datapipe = datapipe
        self.sampler_args = () if sampler_args is None else tuple(sampler_args)
        self.sampler_kwargs = {} if sampler_kwargs is None else dict(sampler_kwargs)
        self.sampler_kwargs["data_source"] = datapipe
        self.sampler = (SequentialSampler if sampler is None else sampler)(
            *self.sampler_args, **self.sampler_kwargs
        )

    def _sources(self) -> tuple[Any, ...]:
        return ()

    def _init_state(self, ctx: Any) -> Pending:
        return Pending(list(self.sampler))

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return state.it

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        from loom.data.iter._common import load_list

        return Pending(load_list("Sampler", data, "pending"))

    def __len__(self) -> int:
        try:
            return len(self.sampler)
        except TypeError as err:
            raise TypeError("Sampler instance doesn't have valid length: its sampler has none") from err
