"""Losses: nll_loss forward and backward (the per-example reduction is done here)."""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize

aten = torch.ops.aten
_NONE, _MEAN, _SUM = 0, 1, 2


def _prepare(args: Any, bdims: Any) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """self as (B, N, C) and target as (B, N); whether the logical input had an N dim."""
    size = batch_size_of(args, bdims)
    x = materialize(args[0], bdims[0], size)
    target = materialize(args[1], bdims[1], size)
    had_n = x.dim() == 3
    if not had_n:
        x, target = x.unsqueeze(1), target.unsqueeze(1)
    return x, target, had_n


def _weights(target: torch.Tensor, weight: Any, ignore_index: int, dtype: torch.dtype) -> torch.Tensor:
    keep = target != ignore_index
    w = keep.to(dtype)
    if weight is not None:
        w = w * weight[target.masked_fill(~keep, 0)]
    return w


@batch_rule(aten.nll_loss_forward.default)
def nll_loss_forward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    if len(args) > 2 and bdims[2] is not None:
        return NotImplemented, None
    x, target, had_n = _prepare(args, bdims)
    weight, reduction, ignore_index = args[2], args[3], args[4]
    size, n, c = x.shape
    losses, _ = aten.nll_loss_forward.default(
        x.reshape(size * n, c), target.reshape(size * n), weight, _NONE, ignore_index
    )
    losses = losses.reshape(size, n)
    w = _weights(target, weight, ignore_index, x.dtype)
    if reduction == _NONE:
        return (losses if had_n else losses.squeeze(1), x.new_zeros(())), (0, None)
    total = w.sum(1)
    out = losses.sum(1)
    if reduction == _MEAN:
        out = out / total
    return (out, total), (0, 0)


@batch_rule(aten.nll_loss_backward.default)
def nll_loss_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    if bdims[3] is not None:
        return NotImplemented, None
    grad_out, _, _, weight, reduction, ignore_index, total_weight = args
    size = batch_size_of(args, bdims)
    x, target, had_n = _prepare(args[1:3], bdims[1:3])
    g = materialize(grad_out, bdims[0], size)
    if reduction == _NONE:
        g = g if had_n else g.unsqueeze(1)
    else:
        g = g.reshape(size, 1)
        if reduction == _MEAN:
            g = g / materialize(total_weight, bdims[6], size).reshape(size, 1)
    w = _weights(target, weight, ignore_index, x.dtype)
    coef = -(w * g)
    safe = target.masked_fill(target == ignore_index, 0)
    grad = torch.zeros_like(x).scatter(2, safe.unsqueeze(2), coef.unsqueeze(2))
    return (grad if had_n else grad.squeeze(1)), 0
