"""Convolutions (forward and backward, transposed, grouped) and pooling.

An input batched alone folds the vmap dim into N. A batched weight folds it into the channels instead and
multiplies ``groups`` by the batch size (one group per example), which also gives per-example weight
gradients in ``convolution_backward``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize, register_each, to_front

aten = torch.ops.aten


def _fold_n(x: torch.Tensor, full_rank: int) -> tuple[torch.Tensor, bool]:
    """(B, N, C, *S) -> (B*N, C, *S); an input without N, (B, C, *S), already looks batched."""
    if x.dim() - 1 == full_rank:
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), True
    return x, False


def _unfold_n(y: torch.Tensor, size: int, had_n: bool) -> torch.Tensor:
    return y.reshape(size, y.shape[0] // size, *y.shape[1:]) if had_n else y


def _to_channels(x: torch.Tensor, had_n: bool) -> torch.Tensor:
    """(B, N, C, *S) -> (N, B*C, *S): the batch joins the channels."""
    if not had_n:
        x = x.unsqueeze(1)
    x = x.movedim(0, 1)
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])


def _from_channels(y: torch.Tensor, size: int, had_n: bool) -> torch.Tensor:
    """(N, B*O, *S) -> (B, N, O, *S), or (B, O, *S) if the input had no N."""
    y = y.reshape(y.shape[0], size, y.shape[1] // size, *y.shape[2:]).movedim(1, 0)
    return y if had_n else y.squeeze(1)


def _flat2(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])


@batch_rule(aten.convolution.default)
def convolution(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    xb, wb, bb = bdims[0], bdims[1], bdims[2]
    size = batch_size_of(args, bdims)
    full_rank = w.dim() - (wb is not None)
    if wb is None:
        xp, had_n = _fold_n(to_front(x, xb), full_rank)
        y = aten.convolution.default(
            xp, w, bias if bb is None else None, stride, padding, dilation, transposed, output_padding, groups
        )
        y = _unfold_n(y, size, had_n)
        if bb is not None:
            b = to_front(bias, bb)
            y = y + _bias_view(b, y, had_n, w.dim() - 2)
        return y, 0
    xp = materialize(x, xb, size)
    had_n = xp.dim() - 1 == full_rank
    xc = _to_channels(xp, had_n)
    wc = _flat2(to_front(w, wb))
    if bias is not None:
        bias = _flat2(materialize(bias, bb, size).unsqueeze(-1)).squeeze(-1)
    y = aten.convolution.default(
        xc, wc, bias, stride, padding, dilation, transposed, output_padding, groups * size
    )
    return _from_channels(y, size, had_n), 0


def _bias_view(b: torch.Tensor, y: torch.Tensor, had_n: bool, spatial: int) -> torch.Tensor:
    """A (B, O) bias shaped to broadcast against y = (B, [N,] O, *S)."""
    shape = [b.shape[0], *([1] if had_n else []), b.shape[1], *([1] * spatial)]
    return b.reshape(shape)


@batch_rule(aten.convolution_backward.default)
def convolution_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    go, x, w, _, stride, padding, dilation, transposed, output_padding, groups, mask = args
    size = batch_size_of(args, bdims)
    full_rank = w.dim() - (bdims[2] is not None)
    gop = materialize(go, bdims[0], size)
    xp = materialize(x, bdims[1], size)
    had_n = xp.dim() - 1 == full_rank
    spatial = full_rank - 2
    grad_input = grad_weight = grad_bias = None
    if bdims[2] is None and mask[0]:
        # A shared weight: the input gradient is an ordinary convolution backward over N*B examples
        # (dense, as fast as unbatched), leaving only the weight gradient to the grouped form below.
        grad_input = _shared_weight_grad_input(gop, xp, w, had_n, size, args)
        mask = [False, mask[1], mask[2]]
    if mask[0] or mask[1]:
        wp = materialize(w, bdims[2], size)
        gi, gw, _ = aten.convolution_backward.default(
            _to_channels(gop, had_n),
            _to_channels(xp, had_n),
            _flat2(wp),
            None,
            stride,
            padding,
            dilation,
            transposed,
            output_padding,
            groups * size,
            [mask[0], mask[1], False],
        )
        if mask[0]:
            grad_input = _from_channels(gi, size, had_n)
        if mask[1]:
            grad_weight = gw.reshape(size, gw.shape[0] // size, *gw.shape[1:])
    if args[10][2]:
        dims = [1, *range(3, 3 + spatial)] if had_n else list(range(2, 2 + spatial))
        grad_bias = gop.sum(dims)
    outs = (grad_input, grad_weight, grad_bias)
    return outs, tuple(None if o is None else 0 for o in outs)


def _shared_weight_grad_input(
    gop: torch.Tensor, xp: torch.Tensor, w: torch.Tensor, had_n: bool, size: int, args: Any
) -> torch.Tensor:
    """``convolution_backward``'s input gradient for a weight shared by the batch: B folds into N."""
    _, _, _, _, stride, padding, dilation, transposed, output_padding, groups, _ = args
    if not had_n:
        gop, xp = gop.unsqueeze(1), xp.unsqueeze(1)
    go_n = gop.reshape(-1, *gop.shape[2:])
    x_n = xp.reshape(-1, *xp.shape[2:])
    gi, _, _ = aten.convolution_backward.default(
        go_n,
        x_n,
        w,
        None,
        stride,
        padding,
        dilation,
        transposed,
        output_padding,
        groups,
        [True, False, False],
    )
    gi = gi.reshape(size, -1, *gi.shape[1:])
    return gi if had_n else gi.squeeze(1)


def fold_rule(full_rank: int) -> Any:
    """Rule for ops that treat dim 0 as the batch N (pooling and its backward): fold the vmap dim into N."""

    def make(op: Any) -> Any:
        tensor_pos = [
            i for i, a in enumerate(op._schema.arguments) if str(a.type) == "Tensor" and not a.kwarg_only
        ]

        def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
            args = list(args)
            size = batch_size_of(args, bdims)
            had_n = False
            for i in tensor_pos:
                if i < len(args) and args[i] is not None:
                    args[i], had_n = _fold_n(materialize(args[i], bdims[i], size), full_rank)
            out = op(*args, **kwargs)
            if isinstance(out, torch.Tensor):
                return _unfold_n(out, size, had_n), 0
            return tuple(_unfold_n(o, size, had_n) for o in out), 0

        return rule

    return make


register_each(
    fold_rule(4),
    aten.max_pool2d_with_indices,
    aten.max_pool2d_with_indices_backward,
    aten.avg_pool2d,
    aten.avg_pool2d_backward,
    aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool2d_backward,
    aten.adaptive_max_pool2d,
    aten.adaptive_max_pool2d_backward,
)
register_each(
    fold_rule(5),
    aten.max_pool3d_with_indices,
    aten.max_pool3d_with_indices_backward,
    aten.avg_pool3d,
    aten.avg_pool3d_backward,
    aten._adaptive_avg_pool3d,
    aten._adaptive_avg_pool3d_backward,
)
