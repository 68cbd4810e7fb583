"""vmap's torch-function mode: randomness for calls that reach no BatchedTensor, and torch-function rules.

NOTE [randomness modes]
- ``'error'`` (the default): every random call inside vmap raises, batched or not, as in torch.func: a
  factory (``torch.randn(3)``), a ``*_like`` or in-place sampler on an unbatched tensor, dropout in training.
  Calls with no batched input never reach ``BatchedTensor``, so this mode catches them by name; random aten
  ops reached from composites are caught by their batching rules (``_rules/random.py``).
- ``'same'``: every example sees the same random values. Random ops on batched tensors draw one logical
  sample and broadcast it (rules in ``_rules/random.py``); calls without batched inputs pass through.
- ``'different'``: every example draws independently. Random ops on batched tensors run on the physical
  tensor; calls without batched inputs are intercepted here and given a batch dimension. An in-place sampler
  on an unbatched tensor is an error (its one buffer cannot hold per-example values).

NOTE [torch-function rules]: a few composite ops (``torch.lstm`` and friends) decompose above
``__torch_dispatch__`` into kernels that write in place into tensors the composite allocated itself, which
vmap cannot batch, or into kernels without batching rules (cuDNN). Their rules (``FUNCTION_RULES`` in
``_rules._table``) run here instead of the call; each vmap level's mode handles its own level, innermost first.

The mode costs about 2 µs per torch call on plain tensors and 4 µs per op on BatchedTensors (CPU, 18.8 ->
22.9 µs for ``x.sin()`` under vmap), for calls the user's function makes: calls inside batching rules and
inside a handled call (autograd's backward, composites) do not pass through it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._levels import VmapLevel
from ._rules._table import FUNCTION_RULES

_FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal}
_LIKE = {
    torch.randn_like,
    torch.rand_like,
    torch.randint_like,
    torch.bernoulli,
    torch.poisson,
    torch.Tensor.bernoulli,
}
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
_MULTINOMIAL = {torch.multinomial, torch.Tensor.multinomial}
_RANDOM = _FACTORIES | _LIKE | _INPLACE | _DROPOUT | _MULTINOMIAL | {torch.dropout}


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


def _draws(func: Any, args: Any, kwargs: Any) -> bool:
    """Whether this call draws random numbers: dropout only in training and with ``p > 0``."""
    if func not in _DROPOUT and func is not torch.dropout:
        return True
    p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
    default = func not in (F.alpha_dropout, F.feature_alpha_dropout)  # these two default to training=False
    train = args[2] if len(args) > 2 else kwargs.get("train", kwargs.get("training", default))
    return bool(train) and p > 0


def _name(func: Any) -> str:
    name = getattr(func, "__name__", repr(func))
    if getattr(func, "__qualname__", "").startswith(("Tensor.", "TensorBase.")):
        return f"Tensor.{name}"
    return f"{'torch.nn.functional' if func in _DROPOUT else 'torch'}.{name}"


class _VmapFunctionMode(TorchFunctionMode):
    def __init__(self, level: VmapLevel) -> None:
        super().__init__()
        self.level = level

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _RANDOM:
            return self._random(func, args, kwargs)
        rule = FUNCTION_RULES.get(func)
        if rule is not None:
            return rule(self.level, func, args, kwargs)
        return func(*args, **kwargs)

    def _random(self, func: Any, args: Any, kwargs: Any) -> Any:
        mode = self.level.randomness
        if mode == "error":
            if _draws(func, args, kwargs):
                raise RuntimeError(
                    f"{self.level.call}: called random operation {_name(func)} while in randomness='error' "
                    "mode. Pass randomness='same' (one sample for the whole batch) or 'different' (one per "
                    "example) to vmap, or perform the random operation outside vmap"
                )
            return func(*args, **kwargs)
        if mode == "same" or _has_batched(args, kwargs, self.level.id) or not _draws(func, args, kwargs):
            return func(*args, **kwargs)
        return self._different(func, args, kwargs)

    def _different(self, func: Any, args: Any, kwargs: Any) -> Any:
        from ._batched import BatchedTensor

        size = self.level.batch_size
        if func is torch.randperm:
            return BatchedTensor(_randperms(size, args, kwargs), self.level.id)
        tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        if func in _FACTORIES and not tensors:
            shape_args, rest = _split_size(func, args, kwargs)
            out = func(*rest[0], (size, *shape_args), **rest[1])
            return BatchedTensor(out, self.level.id)
        if func in _INPLACE:
            raise RuntimeError(
                f"{self.level.call}: randomness='different' with an in-place random op ({_name(func)}) on a "
                "tensor that is not batched: each example needs its own values, which cannot be written into "
                "an unbatched tensor"
            )
        new = list(args)
        for i in tensors:
            new[i] = BatchedTensor(args[i].unsqueeze(0).expand(size, *args[i].shape), self.level.id)
        return func(*new, **kwargs)


def _split_size(func: Any, args: Any, kwargs: Any) -> tuple[tuple[int, ...], tuple[Any, Any]]:
    """The requested shape of a factory call, and the other arguments (positional prefix, kwargs)."""
    kwargs = dict(kwargs)
    if "size" in kwargs:
        return tuple(kwargs.pop("size")), (tuple(args), kwargs)
    if func is torch.randint or func is torch.normal:
        # randint(high, size), randint(low, high, size); normal(mean, std, size)
        *leading, shape = args
        return tuple(shape), (tuple(leading), kwargs)
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0]), ((), kwargs)
    return tuple(args), ((), kwargs)


def _randperms(size: int, args: Any, kwargs: Any) -> torch.Tensor:
    """``size`` independent ``torch.randperm(n)``: the argsort of uniform draws is a uniform permutation."""
    kwargs = dict(kwargs)
    n = args[0] if args else kwargs.pop("n")
    dtype = kwargs.pop("dtype", None) or torch.int64
    u = torch.rand(size, n, generator=kwargs.pop("generator", None), device=kwargs.pop("device", None))
    return u.argsort(dim=1).to(dtype)


def vmap_function_mode(level: VmapLevel) -> TorchFunctionMode:
    """The torch-function mode entered for the duration of one vmap level."""
    return _VmapFunctionMode(level)
