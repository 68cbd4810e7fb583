"""LayerNorm and GroupNorm under vmap, forward and backward.

LayerNorm normalizes trailing dims, so a leading batch dim changes nothing in the forward; per-example
weight/bias are applied after an unweighted call. Its weight/bias gradients sum over the leading dims, which
must stop at the batch dim: they are computed here from the saved mean and rstd.

NOTE [norm kernels read their statistics as contiguous]: torch's CPU ``native_layer_norm_backward`` reads
``mean``/``rstd`` by raw pointer as if they were contiguous; an expanded (stride-0) unbatched statistic gave
NaN or garbage gradients. Every statistic (and GroupNorm's folded inputs) is made contiguous before a kernel
call.

GroupNorm folds the batch into the channels, ``(B, N, C, *S) -> (N, B*C, *S)`` with ``B*G`` groups: each new
group is one example's group, so torch's kernels give per-example statistics, weight and bias gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize, pad_to_rank

aten = torch.ops.aten


def _affine(
    out: torch.Tensor, out_batched: bool, w: Any, wb: Any, b: Any, bb: Any, size: int
) -> torch.Tensor:
    """``out * w + b`` with per-example ``w``/``b`` aligned to the trailing dims of ``out`` (batched result)."""
    rank = out.dim() - out_batched
    shaped = out if out_batched else out.unsqueeze(0)
    if w is not None:
        shaped = shaped * (pad_to_rank(materialize(w, wb, size), rank) if wb is not None else w)
    if b is not None:
        shaped = shaped + (pad_to_rank(materialize(b, bb, size), rank) if bb is not None else b)
    return shaped


@batch_rule(aten.native_layer_norm.default)
def native_layer_norm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x, shape, w, b, eps = args
    size = batch_size_of(args, bdims)
    xb = bdims[0] is not None
    xp = materialize(x, bdims[0], size) if xb else x
    if bdims[2] is None and bdims[3] is None:
        return aten.native_layer_norm.default(xp, shape, w, b, eps), 0
    out, mean, rstd = aten.native_layer_norm.default(xp, shape, None, None, eps)
    out = _affine(out, xb, w, bdims[2], b, bdims[3], size)
    stat_bdim = 0 if xb else None
    return (out, mean, rstd), (0, stat_bdim, stat_bdim)


def _sum_leading(t: torch.Tensor, stop: int) -> torch.Tensor:
    """Sum over physical dims ``1 .. stop-1`` (the per-example leading dims); none if there are none."""
    dims = list(range(1, stop))
    return t.sum(dims) if dims else t


@batch_rule(aten.native_layer_norm_backward.default)
def native_layer_norm_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    go, x, shape, mean, rstd, w, b, mask = args
    size = batch_size_of(args, bdims)
    # See NOTE [norm kernels read their statistics as contiguous].
    go = materialize(go, bdims[0], size)
    x = materialize(x, bdims[1], size)
    mean = materialize(mean, bdims[3], size).contiguous()
    rstd = materialize(rstd, bdims[4], size).contiguous()
    axis = x.dim() - len(shape)
    gi = gw = gb = None
    if mask[0]:
        if w is not None and bdims[5] is not None:
            go_in, w_in = go * pad_to_rank(materialize(w, bdims[5], size), x.dim() - 1), None
        else:
            go_in, w_in = go, w
        gi = aten.native_layer_norm_backward.default(
            go_in, x, shape, mean, rstd, w_in, None, [True, False, False]
        )[0]
    if mask[1] and w is not None:
        gw = _sum_leading(go * ((x - mean) * rstd), axis)
    if mask[2] and b is not None:
        gb = _sum_leading(go, axis)
    outs = (gi, gw, gb)
    return outs, tuple(None if o is None else 0 for o in outs)


def _to_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C, *S) -> (N, B*C, *S), contiguous."""
    x = x.movedim(0, 1)
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]).contiguous()


def _from_channels(y: torch.Tensor, size: int) -> torch.Tensor:
    return y.reshape(y.shape[0], size, y.shape[1] // size, *y.shape[2:]).movedim(1, 0)


def _flat(t: Any, bdim: Any, size: int) -> Any:
    return None if t is None else materialize(t, bdim, size).reshape(-1).contiguous()


def _stats_in(t: torch.Tensor, bdim: Any, size: int) -> torch.Tensor:
    """(B, N, G) -> (N, B*G)."""
    t = materialize(t, bdim, size).movedim(0, 1)
    return t.reshape(t.shape[0], -1).contiguous()


def _stats_out(t: torch.Tensor, size: int) -> torch.Tensor:
    """(N, B*G) -> (B, N, G)."""
    return t.reshape(t.shape[0], size, -1).movedim(1, 0)


@batch_rule(aten.native_group_norm.default)
def native_group_norm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x, w, b, n, c, hxw, group, eps = args
    size = batch_size_of(args, bdims)
    xc = _to_channels(materialize(x, bdims[0], size))
    out, mean, rstd = aten.native_group_norm.default(
        xc, _flat(w, bdims[1], size), _flat(b, bdims[2], size), n, size * c, hxw, size * group, eps
    )
    return (_from_channels(out, size), _stats_out(mean, size), _stats_out(rstd, size)), 0


@batch_rule(aten.native_group_norm_backward.default)
def native_group_norm_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    go, x, mean, rstd, w, n, c, hxw, group, mask = args
    size = batch_size_of(args, bdims)
    gi, gw, gb = aten.native_group_norm_backward.default(
        _to_channels(materialize(go, bdims[0], size)),
        _to_channels(materialize(x, bdims[1], size)),
        _stats_in(mean, bdims[2], size),
        _stats_in(rstd, bdims[3], size),
        _flat(w, bdims[4], size),
        n,
        size * c,
        hxw,
        size * group,
        mask,
    )
    outs = (
        None if gi is None else _from_channels(gi, size),
        None if gw is None else gw.reshape(size, c),
        None if gb is None else gb.reshape(size, c),
    )
    return outs, tuple(None if o is None else 0 for o in outs)
