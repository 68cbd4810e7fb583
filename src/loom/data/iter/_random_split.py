"""RandomSplitter: splits a pipe into groups at random, the same split for every child and epoch."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._combinatorics import rng_from_state, rng_state
from loom.data.iter._common import load_list

__all__ = ["RandomSplitter"]


def _normalize(weights: list[float], total_length: int) -> list[float]:
    total = sum(weights)
    return [float(w) * total_length / total for w in weights]


class _Splitter(IterDataPipe):
    """Holds what the children of one ``random_split`` share: source, keys, weights, seed."""

    _repr_fields = ("keys", "total_length")

    def __init__(
        self, source_datapipe: IterDataPipe, total_length: int, weights: dict[Any, Any], seed: int
    ) -> None:
        self.source_datapipe = source_datapipe
        self.total_length = total_length
        self.keys = list(weights)
        self.norm_weights = _normalize([weights[k] for k in self.keys], total_length)
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("random_split: the container is not iterable; iterate its children")

    def override_seed(self, seed: int) -> _Splitter:
        _check_seed(seed)
        self.seed = seed
        return self

    def length(self, target: Any) -> int:
        w = self.norm_weights
        if not (all(float(x).is_integer() for x in w) and sum(w) == self.total_length):
            raise TypeError(
                "random_split: the lengths of the splits are not known in advance; pass integer weights that "
                "sum up to total_length, or use .set_length(n)"
            )
        return int(w[self.keys.index(target)])


class _SplitState:
    __slots__ = ("remaining", "rng", "weights")

    def __init__(self, rng: random.Random, weights: list[float], remaining: int) -> None:
        self.rng = rng
        self.weights = weights
        self.remaining = remaining


def _split(src: Iterator[Any], state: _SplitState, keys: list[Any], target: int) -> Iterator[Any]:
    # The same draws as torchdata's RandomSplitter, so one seed gives the same split.
    indices = list(range(len(keys)))
    for x in src:
        index = state.rng.choices(indices, state.weights)[0]
        state.weights[index] -= 1
        state.remaining -= 1
        if state.weights[index] < 0:
            state.weights[index] = 0
            state.weights = _normalize(state.weights, state.remaining)
        if index == target:
            yield x


class _SplitChild(IterDataPipe):
    """One group of ``random_split``: reads the whole source and keeps its share."""

    _repr_fields = ("target",)

    def __init__(self, main_datapipe: _Splitter, target: Any) -> None:
        self.main_datapipe = main_datapipe
        self.target = target

    def _sources(self) -> tuple[Any, ...]:
        return (self.main_datapipe.source_datapipe,)

    def override_seed(self, seed: int) -> _SplitChild:
        """Use ``seed`` from the next iteration on (for all groups of this split); returns ``self``."""
        self.main_datapipe.override_seed(seed)
        return self

    def _init_state(self, ctx: Any) -> _SplitState:
        main = self.main_datapipe
        return _SplitState(random.Random(main.seed), list(main.norm_weights), main.total_length)

    def _iterate(self, srcs: list[Iterator[Any]], state: _SplitState) -> Iterator[Any]:
        main = self.main_datapipe
        return _split(srcs[0], state, main.keys, main.keys.index(self.target))

    def _save_state(self, state: _SplitState) -> dict[str, Any]:
        return {"rng": rng_state(state.rng), "weights": list(state.weights), "remaining": state.remaining}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _SplitState:
        weights = load_list("random_split", data, "weights")
        remaining = data.get("remaining")
        if len(weights) != len(self.main_datapipe.keys) or not isinstance(remaining, int):
            raise RuntimeError(f"load_state_dict: random_split got an invalid state {data!r}")
        return _SplitState(
            rng_from_state("random_split", data.get("rng")), [float(w) for w in weights], remaining
        )

    def __len__(self) -> int:
        return self.main_datapipe.length(self.target)


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(
            f"random_split: seed must be an int (every group and epoch must see the same split), got {seed!r}"
        )


@functional_datapipe("random_split")
class RandomSplitter(IterDataPipe):
    """Splits a pipe at random into groups weighted by ``weights`` (functional name: ``random_split``).

    As torchdata's: each group is a child that reads the whole source and keeps the elements drawn
    for it, so the groups are disjoint and together hold every element. The split depends only on
    ``seed`` (not on the graph seeding or the epoch), so it stays the same across groups and epochs;
    ``override_seed`` changes it. The random state is part of each child's iterator state.

    Args:
        source_datapipe: the source pipe.
        weights: ``{key: weight}``; one group per key.
        seed: an int.
        total_length: the source's length (default ``len(source_datapipe)``).
        target: return only the group of this key instead of a list of all groups.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> train, valid = IterableWrapper(range(10)).random_split({"train": 0.5, "valid": 0.5}, seed=0)
        >>> sorted(list(train) + list(valid)) == list(range(10))
        True
    """

    def __new__(
        cls,
        source_datapipe: IterDataPipe,
        weights: dict[Any, float],
        seed: int,
        total_length: int | None = None,
        target: Any = None,
    ) -> Any:
        if not isinstance(source_datapipe, IterDataPipe):
            raise TypeError(
                f"random_split: the source must be an IterDataPipe, got {type(source_datapipe).__name__}"
            )
        if not isinstance(weights, dict) or not weights:
            raise ValueError(f"random_split: weights must be a non-empty dict, got {weights!r}")
        for key, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise ValueError(f"random_split: weights must be non-negative numbers, got {w!r} for {key!r}")
        if not sum(weights.values()) > 0:
            raise ValueError(f"random_split: the weights must not all be 0, got {weights!r}")
        _check_seed(seed)
        if total_length is None:
            try:
                total_length = len(source_datapipe)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"random_split: needs total_length, since its source {type(source_datapipe).__name__} has no length"
                ) from None
        if isinstance(total_length, bool) or not isinstance(total_length, int) or total_length < 1:
            raise ValueError(f"random_split: total_length must be a positive int, got {total_length!r}")
        container = _Splitter(source_datapipe, total_length, weights, seed)
        if target is None:
            return [_SplitChild(container, k) for k in container.keys]
        if target not in weights:
            raise KeyError(f"random_split: target={target!r} is not a key of weights {list(weights)}")
        return _SplitChild(container, target)
