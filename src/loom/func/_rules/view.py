"""Views and reshapes: the batch dim stays first and logical dims shift by one."""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize, pad_to_rank, to_front, wrap_dim

aten = torch.ops.aten


def _x(args: Any, bdims: Any) -> torch.Tensor:
    return to_front(args[0], bdims[0])


def _arg(args: Any, i: int, default: Any) -> Any:
    return args[i] if len(args) > i else default


@batch_rule(aten.view.default, aten._unsafe_view.default, aten.view_copy.default)
def view(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return x.view(x.shape[0], *args[1]), 0


@batch_rule(aten._reshape_alias.default, aten.reshape.default)
def reshape_alias(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return x.reshape(x.shape[0], *args[1]), 0


@batch_rule(aten.expand.default, aten.expand_copy.default)
def expand(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    size = list(args[1])
    x = pad_to_rank(x, len(size))
    return x.expand(x.shape[0], *size), 0


@batch_rule(aten.permute.default, aten.permute_copy.default)
def permute(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    rank = x.dim() - 1
    return x.permute(0, *[wrap_dim(d, rank) + 1 for d in args[1]]), 0


@batch_rule(aten.transpose.int, aten.transpose_copy.int)
def transpose(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    rank = x.dim() - 1
    if rank == 0:
        return x, 0
    return x.transpose(wrap_dim(args[1], rank) + 1, wrap_dim(args[2], rank) + 1), 0


@batch_rule(aten.t.default, aten.t_copy.default)
def t(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return (x.transpose(1, 2) if x.dim() == 3 else x), 0


@batch_rule(aten.squeeze.default, aten.squeeze_copy.default)
def squeeze(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    dims = [i for i in range(1, x.dim()) if x.shape[i] == 1]
    return (x.squeeze(dims) if dims else x), 0


@batch_rule(aten.squeeze.dim, aten.squeeze.dims, aten.squeeze_copy.dim, aten.squeeze_copy.dims)
def squeeze_dim(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    rank = x.dim() - 1
    dims = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
    if rank == 0:
        return x, 0
    phys = [wrap_dim(d, rank) + 1 for d in dims]
    return x.squeeze([d for d in phys if x.shape[d] == 1]), 0


@batch_rule(aten.unsqueeze.default, aten.unsqueeze_copy.default)
def unsqueeze(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return x.unsqueeze(wrap_dim(args[1], x.dim()) + 1), 0


@batch_rule(aten.select.int, aten.select_copy.int)
def select(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return x.select(wrap_dim(args[1], x.dim() - 1) + 1, args[2]), 0


@batch_rule(aten.slice.Tensor, aten.slice_copy.Tensor)
def slice_(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    dim = wrap_dim(_arg(args, 1, 0), x.dim() - 1) + 1
    return aten.slice.Tensor(x, dim, _arg(args, 2, None), _arg(args, 3, None), _arg(args, 4, 1)), 0


# select/slice backward and scatter: write one slice into zeros (or into ``self``); the batch dim goes first.


@batch_rule(aten.slice_backward.default)
def slice_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    grad = _x(args, bdims)
    dim = wrap_dim(args[2], len(args[1])) + 1
    return aten.slice_backward.default(grad, [grad.shape[0], *args[1]], dim, *args[3:]), 0


@batch_rule(aten.select_backward.default)
def select_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    grad = _x(args, bdims)
    dim = wrap_dim(args[2], len(args[1])) + 1
    return aten.select_backward.default(grad, [grad.shape[0], *args[1]], dim, args[3]), 0


@batch_rule(aten.slice_scatter.default)
def slice_scatter(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    size = batch_size_of(args, bdims)
    x, src = materialize(args[0], bdims[0], size), materialize(args[1], bdims[1], size)
    dim = wrap_dim(_arg(args, 2, 0), x.dim() - 1) + 1
    return aten.slice_scatter.default(x, src, dim, *args[3:]), 0


@batch_rule(aten.select_scatter.default)
def select_scatter(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    size = batch_size_of(args, bdims)
    x, src = materialize(args[0], bdims[0], size), materialize(args[1], bdims[1], size)
    dim = wrap_dim(args[2], x.dim() - 1) + 1
    return aten.select_scatter.default(x, src, dim, args[3]), 0


@batch_rule(aten.narrow.default, aten.narrow_copy.default)
def narrow(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return x.narrow(wrap_dim(args[1], x.dim() - 1) + 1, args[2], args[3]), 0


@batch_rule(aten.split.Tensor, aten.split_with_sizes.default)
def split(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    dim = wrap_dim(_arg(args, 2, 0), x.dim() - 1) + 1
    return list(torch.split(x, args[1], dim)), 0


def _unsafe_split(op: Any) -> Any:
    # The unsafe forms stay unsafe on the physical tensor: composites (RNN cells) write into their outputs in
    # place, which autograd refuses for the outputs of a view-tracked split.
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        x = _x(args, bdims)
        dim = wrap_dim(_arg(args, 2, 0), x.dim() - 1) + 1
        return list(op(x, args[1], dim)), 0

    return rule


batch_rule(aten.unsafe_split.Tensor)(_unsafe_split(aten.unsafe_split.Tensor))
batch_rule(aten.unsafe_split_with_sizes.default)(_unsafe_split(aten.unsafe_split_with_sizes.default))


@batch_rule(aten.unbind.int)
def unbind(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    return list(x.unbind(wrap_dim(_arg(args, 1, 0), x.dim() - 1) + 1)), 0


@batch_rule(aten.diagonal.default, aten.diagonal_copy.default)
def diagonal(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    rank = x.dim() - 1
    d1 = wrap_dim(_arg(args, 2, 0), rank) + 1
    d2 = wrap_dim(_arg(args, 3, 1), rank) + 1
    return x.diagonal(_arg(args, 1, 0), d1, d2), 0


@batch_rule(aten.unfold.default)
def unfold(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    if x.dim() == 1:
        return x.unsqueeze(1).unfold(1, args[2], args[3]).squeeze(1), 0
    return x.unfold(wrap_dim(args[1], x.dim() - 1) + 1, args[2], args[3]), 0


@batch_rule(aten.repeat.default)
def repeat(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = pad_to_rank(_x(args, bdims), len(args[1]))
    return x.repeat(1, *args[1]), 0


@batch_rule(aten.roll.default)
def roll(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = _x(args, bdims)
    shifts = args[1]
    dims = _arg(args, 2, [])
    if not dims:
        flat = x.reshape(x.shape[0], -1)
        return flat.roll(shifts, 1).reshape(x.shape), 0
    return x.roll(shifts, [wrap_dim(d, x.dim() - 1) + 1 for d in dims]), 0


def _unary_view(op: Any) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        return op(_x(args, bdims), *args[1:], **kwargs), 0

    return rule


for _op in (aten.view_as_real.default, aten.view_as_complex.default, aten.conj_physical.default):
    batch_rule(_op)(_unary_view(_op))


# NOTE [no conjugate or negative bits on physical tensors]: rules run below the Conjugate and Negative
# dispatch keys, so kernels would read a lazily conjugated (or negated) physical tensor's memory as it is.
# The lazy views are therefore materialized, and vmap resolves such bits on its inputs.
@batch_rule(aten._conj.default)
def conj(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    return torch.conj_physical(_x(args, bdims)), 0


@batch_rule(aten._neg_view.default)
def neg_view(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    return torch.neg(_x(args, bdims)), 0


@batch_rule(aten.index_select.default)
def index_select(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    if bdims[2] is not None:
        return NotImplemented, None
    x = _x(args, bdims)
    return x.index_select(wrap_dim(args[1], x.dim() - 1) + 1, args[2]), 0
