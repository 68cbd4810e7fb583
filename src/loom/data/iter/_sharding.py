"""Sharding: ShardingFilter, apply_sharding, SHARDING_PRIORITIES, and automatic DataLoader worker shards.

# NOTE [sharding]
# A ShardingFilter keeps every ``num_shards``-th element starting at ``shard_index``. The shard is
# the combination of the groups set by ``apply_sharding`` (DEFAULT, or DISTRIBUTED and
# MULTIPROCESSING, as in torch) and, inside a ``torch.utils.data.DataLoader`` worker, the worker's
# place among ``num_workers`` (unless a MULTIPROCESSING group was set explicitly). Groups combine
# like torch's: the highest-priority group varies fastest.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum
from itertools import islice
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["SHARDING_PRIORITIES", "ShardingFilter", "apply_sharding"]


class SHARDING_PRIORITIES(IntEnum):
    """Sharding groups, as in torch: DEFAULT alone, or DISTRIBUTED and MULTIPROCESSING combined."""

    DEFAULT = 1
    DISTRIBUTED = 2
    MULTIPROCESSING = 3


def _combine(groups: dict[int, tuple[int, int]]) -> tuple[int, int]:
    num, index = 1, 0
    for key in sorted(groups, reverse=True):
        n, i = groups[key]
        index += num * i
        num *= n
    return num, index


class _ShardState:
    __slots__ = ("index", "num", "started")

    def __init__(self, num: int, index: int, started: bool) -> None:
        self.num = num
        self.index = index
        self.started = started


@functional_datapipe("sharding_filter")
class ShardingFilter(IterDataPipe):
    """Keeps this shard's elements: every ``num_shards``-th, from ``shard_index`` (functional name: ``sharding_filter``).

    Set the shard with ``apply_sharding``; inside ``DataLoader(num_workers=k)`` each worker takes its
    shard automatically. See NOTE [sharding].

    Args:
        source_datapipe: the source pipe.
        sharding_group_filter: if given, only this group's sharding applies.

    Example:
        >>> from loom.data import apply_sharding
        >>> from loom.data.iter import IterableWrapper
        >>> list(apply_sharding(IterableWrapper(range(10)).sharding_filter(), 3, 1))
        [1, 4, 7]
    """

    _is_sharding = True
    _repr_fields = ("groups",)

    def __init__(self, source_datapipe: Any, sharding_group_filter: Any = None) -> None:
        check_source("sharding_filter", source_datapipe)
        self.source_datapipe = source_datapipe
        self.sharding_group_filter = sharding_group_filter
        self.groups: dict[int, tuple[int, int]] = {}

    def apply_sharding(
        self, num_of_instances: int, instance_id: int, sharding_group: Any = SHARDING_PRIORITIES.DEFAULT
    ) -> None:
        """Take shard ``instance_id`` of ``num_of_instances`` for ``sharding_group``."""
        check_int("apply_sharding", "num_shards", num_of_instances, 1)
        check_int("apply_sharding", "shard_index", instance_id, 0)
        if instance_id >= num_of_instances:
            raise ValueError(
                f"apply_sharding: shard_index must be < num_shards, got shard_index={instance_id}, "
                f"num_shards={num_of_instances}"
            )
        group = SHARDING_PRIORITIES(sharding_group)
        default = SHARDING_PRIORITIES.DEFAULT
        if (group == default and any(g != default for g in self.groups)) or (
            group != default and default in self.groups
        ):
            raise RuntimeError("apply_sharding: cannot mix the DEFAULT sharding group with other groups")
        self.groups[int(group)] = (num_of_instances, instance_id)

    def _shard(self, ctx: Any) -> tuple[int, int]:
        groups = {
            k: v
            for k, v in self.groups.items()
            if self.sharding_group_filter is None or k == self.sharding_group_filter
        }
        worker = ctx.worker
        mp = int(SHARDING_PRIORITIES.MULTIPROCESSING)
        if worker is not None and worker.num_workers > 1 and mp not in self.groups:
            groups[mp + 1] = (worker.num_workers, worker.id)  # the worker varies fastest
        return _combine(groups)

    def _init_state(self, ctx: Any) -> _ShardState:
        num, index = self._shard(ctx)
        ctx.shard = (num, index)
        return _ShardState(num, index, False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _ShardState) -> Iterator[Any]:
        if state.num == 1:
            return srcs[0]
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: _ShardState) -> Iterator[Any]:
        # islice takes whole strides inside one next() call; all the state needed is whether the
        # first element (at offset ``index``) has been taken.
        if not state.started:
            for x in islice(src, state.index, state.index + 1):
                state.started = True
                yield x
            if not state.started:
                return
        yield from islice(src, state.num - 1, None, state.num)

    def _save_state(self, state: _ShardState) -> dict[str, Any]:
        return {"num_shards": state.num, "shard_index": state.index, "started": state.started}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _ShardState:
        num, index = self._shard(ctx)
        if (data.get("num_shards"), data.get("shard_index")) != (num, index):
            raise RuntimeError(
                f"load_state_dict: the state is for shard {data.get('shard_index')!r} of "
                f"{data.get('num_shards')!r}, but this ShardingFilter is shard {index} of {num}"
            )
        ctx.shard = (num, index)
        return _ShardState(num, index, bool(data.get("started")))

    def __len__(self) -> int:
        n = self._source_len()
        num, index = _combine(self.groups)
        return n // num + (1 if index < n % num else 0)


def apply_sharding(
    datapipe: Any, num_shards: int, shard_index: int, sharding_group: Any = SHARDING_PRIORITIES.DEFAULT
) -> Any:
    """Give every ShardingFilter in the graph of ``datapipe`` shard ``shard_index`` of ``num_shards``; returns ``datapipe``.

    Raises:
        ValueError: ``shard_index`` is not in ``[0, num_shards)``.
        RuntimeError: two sharding filters are on one path (elements would be sharded twice).

    Example:
        >>> from loom.data import apply_sharding
        >>> from loom.data.iter import IterableWrapper
        >>> list(apply_sharding(IterableWrapper(range(6)).sharding_filter(), 2, 0))
        [0, 2, 4]
    """
    from loom.data._graph import list_dps, traverse_dps

    check_int("apply_sharding", "num_shards", num_shards, 1)
    check_int("apply_sharding", "shard_index", shard_index, 0)
    if shard_index >= num_shards:
        raise ValueError(
            f"apply_sharding: shard_index must be < num_shards, got shard_index={shard_index}, num_shards={num_shards}"
        )
    filters = [p for p in list_dps(traverse_dps(datapipe)) if getattr(p, "_is_sharding", False)]
    for f in filters:
        upstream = list_dps(traverse_dps(f))[1:]
        if any(getattr(p, "_is_sharding", False) for p in upstream):
            raise RuntimeError(
                "apply_sharding: two sharding filters are on one path of the pipeline, which would shard "
                "twice; keep one"
            )
    for f in filters:
        f.apply_sharding(num_shards, shard_index, sharding_group)
    return datapipe
