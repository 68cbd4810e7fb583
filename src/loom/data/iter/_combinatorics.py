"""Random pipes: Shuffler."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["Shuffler"]


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
