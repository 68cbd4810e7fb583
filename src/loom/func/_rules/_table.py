"""The batching-rule table and the small helpers rules share. See the package docstring for the convention."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch

BDim = Union[int, None]
Rule = Callable[..., tuple[Any, Any]]

# Keyed by aten OpOverload (``aten.sum.dim_IntList``). Packets (``aten.sum``) are expanded to all their
# overloads at registration time, so the per-op lookup is one dict access.
RULES: dict[Any, Rule] = {}


def _overloads(op: Any) -> list[Any]:
    if isinstance(op, torch._ops.OpOverloadPacket):
        return [getattr(op, name) for name in op.overloads()]  # type: ignore[no-untyped-call]
    if isinstance(op, torch._ops.OpOverload):
        return [op]
    raise TypeError(f"register_batch_rule: expected an aten op such as torch.ops.aten.sin, got {op!r}")


def batch_rule(*ops: Any) -> Callable[[Rule], Rule]:
    """Decorator: register the decorated ``(args, bdims, **kwargs) -> (out, out_bdim)`` rule for ``ops``."""

    def register(rule: Rule) -> Rule:
        for op in ops:
            for overload in _overloads(op):
                RULES[overload] = rule
        return rule

    return register


def register_each(make_rule: Callable[[Any], Rule], *ops: Any) -> None:
    """Register ``make_rule(overload)`` for every overload of every op: generic rules that need the op."""
    for op in ops:
        for overload in _overloads(op):
            RULES[overload] = make_rule(overload)


# Torch-function rules, keyed by the public function (``torch.lstm``): ``(level, func, args, kwargs) ->
# result``, called by vmap's torch-function mode instead of ``func`` (mode off, so calling ``func`` inside is
# fine). See NOTE [torch-function rules] in ``loom.func._random``.
FUNCTION_RULES: dict[Any, Callable[[Any, Any, Any, Any], Any]] = {}


# ----------------------------------------------------------------------------------------------------------
# Helpers. Physical tensors carry the batch dimension at ``bdim`` (0 for every BatchedTensor input).


def batch_size_of(args: Sequence[Any], bdims: Sequence[Any]) -> int:
    """The batch size, read from the first batched tensor among ``args`` (lists included)."""
    for a, b in zip(args, bdims):
        if isinstance(b, int):
            return int(a.shape[b])
        if isinstance(b, (tuple, list)):
            for t, tb in zip(a, b):
                if tb is not None:
                    return int(t.shape[tb])
    raise RuntimeError("batching rule called with no batched argument")


def to_front(x: torch.Tensor, bdim: BDim) -> torch.Tensor:
    """``x`` with its batch dimension first (a view); unbatched tensors are returned as they are."""
    if bdim is None or bdim == 0:
        return x
    return x.movedim(bdim, 0)


def materialize(x: torch.Tensor, bdim: BDim, batch_size: int) -> torch.Tensor:
    """``x`` with a batch dimension at 0: moved there, or (unbatched) expanded to ``batch_size`` (a view)."""
    if bdim is None:
        return x.unsqueeze(0).expand(batch_size, *x.shape)
    return to_front(x, bdim)


def logical_rank(x: torch.Tensor, bdim: BDim) -> int:
    """The rank the user sees: the physical rank minus the batch dimension."""
    return x.dim() - (bdim is not None)


def wrap_dim(dim: int, rank: int) -> int:
    """Normalize a possibly negative ``dim`` for a tensor of ``rank`` dims (0-dim tensors accept 0 and -1)."""
    r = max(rank, 1)
    if not -r <= dim < r:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-r}, {r - 1}], but got {dim})"
        )
    return dim % r


def pad_to_rank(x: torch.Tensor, rank: int) -> torch.Tensor:
    """Insert size-1 dims after the batch dim (at 0) so ``x`` has ``rank`` logical dims: broadcasting."""
    missing = rank - (x.dim() - 1)
    if missing <= 0:
        return x
    return x.reshape(x.shape[0], *([1] * missing), *x.shape[1:])


# The vmap level whose rule is running (innermost last); rules that need the level itself (randomness, the
# user's call for error messages) read ``current_level()``.
DISPATCHING: list[Any] = []


def current_level() -> Any:
    """The VmapLevel whose batching rule is running."""
    return DISPATCHING[-1]


def register_batch_rule(op: Any, rule: Rule) -> None:
    """Register a batching rule for an aten op (all overloads of a packet), replacing any existing one.

    A rule receives the op's positional arguments, with each tensor batched at the current vmap level
    replaced by its physical tensor, and ``bdims``: for each argument the batch dim of that physical tensor
    (``None`` if unbatched; a tuple for a list of tensors). Keyword-only arguments arrive as keywords. It
    returns ``(out, out_bdim)``. See ``loom.func._rules`` for the full convention.

    Args:
        op: An ``torch.ops.aten`` overload (``aten.sin.default``) or packet (``aten.sin``).
        rule: ``(args, bdims, **kwargs) -> (out, out_bdim)``.

    Example:
        >>> import torch
        >>> from loom.func import register_batch_rule, vmap
        >>> def my_sin(args, bdims, **kwargs):
        ...     return torch.sin(args[0]), bdims[0]
        >>> register_batch_rule(torch.ops.aten.sin.default, my_sin)
        >>> vmap(torch.sin)(torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """
    if not callable(rule):
        raise TypeError(f"register_batch_rule: rule must be callable, got {type(rule).__name__}")
    from .._batched import forget_handler

    for overload in _overloads(op):
        RULES[overload] = rule
        forget_handler(overload)
