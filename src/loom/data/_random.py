"""Seeding of random pipes: graph seed, epoch, position in the graph, shard.

# NOTE [seeds]
# A random pipe (``_is_random = True``, e.g. Shuffler) asks ``ctx.seed_for(self)`` once per iteration.
# - With a seed (``set_graph_random_seed(pipe, seed)`` or ``Shuffler.set_seed``), the pipe's seed is
#   mixed with its epoch, a counter of iterations started since the seed was set: the same seed gives
#   the same sequence of orders, and each new epoch a new order. Inside a DataLoader worker the
#   loader's base seed for this epoch is mixed in as well, because each epoch's workers get a fresh
#   copy of the pipe (whose epoch counter would otherwise start at 0 every time), except when the
#   graph is sharded across ranks (a DISTRIBUTED sharding group): ranks must agree on the order
#   before the sharding point and their loaders' seeds differ. Then fresh workers repeat an epoch's
#   order unless the seed changes per epoch (``set_graph_random_seed(pipe, seed + epoch)``, as with
#   ``DistributedSampler.set_epoch``) or the workers persist.
# - Without a seed, ranks cannot agree (unless a loader hands them one base seed, ``loader_seed``): a
#   random pipe before a sharding point sharded across ranks warns (RuntimeWarning) that elements
#   would be duplicated and lost.
# - Without a seed, each iteration draws a base seed from torch's default generator (so
#   ``torch.manual_seed`` reproduces runs) and mixes in the pipe's position in the graph. Inside a
#   DataLoader worker the base seed is the loader's base seed for this epoch, which all workers share:
#   pipes before the sharding point must shuffle identically in every worker, or elements would be
#   duplicated and lost. With persistent workers (the same base seed every epoch) the worker's count of
#   epochs run is mixed in as well; every worker runs each epoch once, so they stay in step.
# - After a sharding point, the shard index is mixed in, so each worker and rank shuffles differently.
# - A pipe started again within one iteration (by Cycler) mixes in how many times it started.
# - Under ``loader_seed(s)`` (DataLoader2 sets it while starting an epoch, in the main process and in
#   its workers), ``s`` is the base seed instead of a draw: one seed per loader and epoch.
# The per-iteration seeds and start counts are saved in the root of the iterator state ("random"),
# so a restored iterator reseeds later restarts, and later epochs, exactly as the original would.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.utils.data

__all__ = ["set_graph_random_seed"]


def worker_info() -> Any:
    return torch.utils.data.get_worker_info()


def mix(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python versions."""
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


_LOADER_SEED: list[int | None] = [None]


@contextlib.contextmanager
def loader_seed(seed: int | None) -> Iterator[None]:
    """Iterations started inside take ``seed`` as their base seed; see NOTE [seeds]."""
    previous = _LOADER_SEED[0]
    _LOADER_SEED[0] = seed
    try:
        yield
    finally:
        _LOADER_SEED[0] = previous


def draw_base_seed(worker: Any) -> int:
    if _LOADER_SEED[0] is not None:
        return _LOADER_SEED[0]
    if worker is not None:
        return int(worker.seed - worker.id)
    return int(torch.empty((), dtype=torch.int64).random_().item())


def seed_for(ctx: Any, pipe: Any) -> int:
    """A seed for one start of a random pipe. See NOTE [seeds]."""
    position = ctx.position(pipe)
    entry = ctx.random.get(position)
    if entry is None:
        explicit = getattr(pipe, "_seed", None)
        if explicit is None:
            if ctx.shard is None and _LOADER_SEED[0] is None and ctx.distributed():
                warnings.warn(
                    f"{type(pipe).__name__} has no seed but comes before a sharding_filter sharded across "
                    "ranks: each rank draws its own order, so ranks duplicate and lose elements; call "
                    "loom.data.set_graph_random_seed(pipe, seed) with the same seed on every rank",
                    RuntimeWarning,
                    stacklevel=2,
                )
            entry = [ctx.base_seed(), -1, 0]
        else:
            epoch = getattr(pipe, "_epoch", 0)
            pipe._epoch = epoch + 1
            # In fresh (non-persistent) DataLoader workers the loader's base seed is what changes from
            # epoch to epoch; across ranks it differs, so it stays out when sharding spans ranks.
            use_loader = ctx.worker is not None and not ctx.distributed()
            loader = int(ctx.worker.seed - ctx.worker.id) if use_loader else -1
            entry = [mix(explicit, epoch, loader), epoch, 0]
        ctx.random[position] = entry
    draw = entry[2]
    entry[2] = draw + 1  # a pipe restarted within one iteration (Cycler) draws again
    shard_index = -1 if ctx.shard is None else ctx.shard[1]
    return mix(entry[0], position, draw, shard_index)


def set_graph_random_seed(pipe: Any, seed: int) -> Any:
    """Seed every random pipe in the graph of ``pipe``; returns ``pipe``.

    Each random pipe gets a seed derived from ``seed`` and its position in the graph, and its epoch
    counter restarts: the same seed reproduces the same orders, and every new iteration (epoch)
    reshuffles. See NOTE [seeds].

    Args:
        pipe: the output pipe of the graph.
        seed: an integer.

    Raises:
        TypeError: ``seed`` is not an integer.

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = IterableWrapper(range(10)).shuffle()
        >>> first = list(set_graph_random_seed(pipe, 0))
        >>> first == list(set_graph_random_seed(pipe, 0))
        True
    """
    from loom.data._graph import list_dps, traverse_dps

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"set_graph_random_seed: seed must be an int, got {seed!r}")
    for position, p in enumerate(list_dps(traverse_dps(pipe))):
        if getattr(p, "_is_random", False):
            p._seed = mix(seed, position)
            p._epoch = 0
    return pipe
