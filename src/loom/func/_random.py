"""Randomness under vmap: a torch-function mode for random calls that have no batched input.

NOTE [randomness modes]
- ``'error'``: a random op on a batched tensor raises (in its batching rule). Factory calls such as
  ``torch.randn(3)`` have no batched input and are not intercepted: they return one sample shared by the
  batch, as ``'same'`` would (keeping the default mode free of a per-op torch-function hook).
- ``'same'``: every example sees the same random values. Random ops on batched tensors draw one logical
  sample and broadcast it (rules in ``_rules/random.py``); calls without batched inputs pass through.
- ``'different'``: every example draws independently. Random ops on batched tensors run on the physical
  tensor; calls without batched inputs are intercepted here and given a batch dimension.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._levels import VmapLevel

_FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal}
_LIKE = {torch.randn_like, torch.rand_like, torch.randint_like, torch.bernoulli, torch.poisson}
_INPLACE = {
    torch.Tensor.normal_,
    torch.Tensor.uniform_,
    torch.Tensor.bernoulli_,
    torch.Tensor.random_,
    torch.Tensor.exponential_,
    torch.Tensor.cauchy_,
    torch.Tensor.log_normal_,
    torch.Tensor.geometric_,
}
_DROPOUT = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
_RANDOM = _FACTORIES | _LIKE | _INPLACE | _DROPOUT | {torch.multinomial, torch.dropout}


def _has_batched(args: Any, kwargs: Any, level_id: int) -> bool:
    from ._batched import BatchedTensor

    for a in (*args, *kwargs.values()):
        if isinstance(a, BatchedTensor) and a._level == level_id:
            return True
        if isinstance(a, (list, tuple)) and any(
            isinstance(e, BatchedTensor) and e._level == level_id for e in a
        ):
            return True
    return False


class _RandomnessMode(TorchFunctionMode):
    def __init__(self, level: VmapLevel) -> None:
        super().__init__()
        self.level = level

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in _RANDOM or _has_batched(args, kwargs, self.level.id):
            return func(*args, **kwargs)
        if self.level.randomness == "same":
            return func(*args, **kwargs)
        return self._different(func, args, kwargs)

    def _different(self, func: Any, args: Any, kwargs: Any) -> Any:
        from ._batched import BatchedTensor

        size = self.level.batch_size
        if func in _FACTORIES and func is not torch.normal:
            shape_args, rest = _split_size(func, args, kwargs)
            out = func(*rest[0], (size, *shape_args), **rest[1])
            return BatchedTensor(out, self.level.id)
        if func in _LIKE or func in _DROPOUT or func in (torch.multinomial, torch.dropout, torch.normal):
            tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
            if not tensors:
                raise RuntimeError(
                    f"{self.level.call}: randomness='different' cannot batch {getattr(func, '__name__', func)} "
                    "called without tensor arguments; pass a tensor (e.g. torch.normal(mean_tensor, std))"
                )
            new = list(args)
            for i in tensors:
                new[i] = BatchedTensor(args[i].unsqueeze(0).expand(size, *args[i].shape), self.level.id)
            return func(*new, **kwargs)
        raise RuntimeError(
            f"{self.level.call}: randomness='different' with an in-place random op "
            f"({getattr(func, '__name__', func)}) on a tensor that is not batched: each example needs its "
            "own values, which cannot be written into an unbatched tensor"
        )


def _split_size(func: Any, args: Any, kwargs: Any) -> tuple[tuple[int, ...], tuple[Any, Any]]:
    """The requested shape of a factory call, and the other arguments (positional prefix, kwargs)."""
    kwargs = dict(kwargs)
    if "size" in kwargs:
        return tuple(kwargs.pop("size")), ((), kwargs)
    if func is torch.randint:
        # randint(high, size) or randint(low, high, size)
        *bounds, shape = args
        return tuple(shape), (tuple(bounds), kwargs)
    if func is torch.randperm:
        raise RuntimeError(
            "vmap: randomness='different' does not support torch.randperm; call it outside vmap"
        )
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0]), ((), kwargs)
    return tuple(args), ((), kwargs)


def random_mode(level: VmapLevel) -> Any:
    """The torch-function mode for ``level``'s randomness (none for ``'error'``)."""
    if level.randomness == "error":
        return nullcontext()
    return _enter(level)


@contextmanager
def _enter(level: VmapLevel) -> Iterator[None]:
    with _RandomnessMode(level):
        yield
