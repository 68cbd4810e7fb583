"""torch.autograd.Function under vmap when an outer grad/jvp level differentiates through it.

NOTE [autograd.Function under grad(vmap(f))]
``Function.apply`` runs ``forward`` with grad mode off, so the ops inside reach BatchedTensor without
recording on the physical tensors, and an outer ``grad`` would silently see no dependence. When a batched
argument's physical tensor takes part in outer differentiation, Loom instead calls the Function's ``vmap``
staticmethod on the physical tensors (as torch.func does), so ``apply`` records the custom backward on them.
Without a ``vmap`` staticmethod that case is an error. Every other case runs ``Function.apply`` unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from ._batched import BatchedTensor
from ._levels import LIVE_VMAP

_FUNCTION = torch.autograd.Function
_ORIGINAL_APPLY: Any = _FUNCTION.__dict__["apply"].__func__


def _top_batched(args: Any) -> int:
    top = 0
    for a in args:
        if isinstance(a, BatchedTensor) and a._level > top:
            top = a._level
    return top


def _apply(cls: Any, *args: Any, **kwargs: Any) -> Any:
    if not LIVE_VMAP or not torch.is_grad_enabled():
        return _ORIGINAL_APPLY(cls, *args, **kwargs)
    top = _top_batched(args)
    level = LIVE_VMAP.get(top)
    if level is None or not any(
        isinstance(a, BatchedTensor) and a._level == top and a._value.requires_grad for a in args
    ):
        return _ORIGINAL_APPLY(cls, *args, **kwargs)
    if getattr(cls, "vmap", _FUNCTION.vmap) is _FUNCTION.vmap:
        raise NotImplementedError(
            f"{level.call}: autograd.Function {cls.__name__} is applied to a batched tensor that an outer "
            "grad/jvp differentiates through (grad(vmap(f))); give it a vmap staticmethod "
            "(vmap(info, in_dims, *args) -> (outputs, out_dims)) so that its backward is used"
        )
    in_dims = tuple(0 if isinstance(a, BatchedTensor) and a._level == top else None for a in args)
    physical = [a._value if d == 0 else a for a, d in zip(args, in_dims)]
    info = SimpleNamespace(batch_size=level.batch_size, randomness=level.randomness)
    out, out_dims = cls.vmap(info, in_dims, *physical, **kwargs)
    if isinstance(out, torch.Tensor):
        return out if out_dims is None else BatchedTensor(out.movedim(out_dims, 0), top)
    if not isinstance(out_dims, (tuple, list)):
        out_dims = [out_dims] * len(out)
    return type(out)(
        o if d is None or not isinstance(o, torch.Tensor) else BatchedTensor(o.movedim(d, 0), top)
        for o, d in zip(out, out_dims)
    )


def install() -> None:
    """Route ``torch.autograd.Function.apply`` through ``_apply`` (idempotent; a no-op outside vmap)."""
    if _FUNCTION.__dict__["apply"].__func__ is not _apply:
        _FUNCTION.apply = classmethod(_apply)  # type: ignore[assignment,method-assign]
