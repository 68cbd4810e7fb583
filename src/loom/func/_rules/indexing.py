"""Indexing: gather, scatter, index_select, advanced indexing (index / index_put) and embedding.

NOTE [batched indices index a flattened batch]: when an index tensor differs per example, each example must
read (or write) only its own slice. Two equivalent tricks keep that to one kernel call: an ``arange(B)`` index
on the batch dim placed before the user's indices (advanced indexing), or offsetting example ``b``'s indices
by ``b * n`` into a tensor whose batch dim is flattened into the indexed dim (index_select, embedding).
Unbatched indices need neither: the batch dim is moved out of the way (to the end for advanced indexing, so
that the result's layout does not depend on whether the indices are adjacent).
"""

from __future__ import annotations

from typing import Any

import torch

from . import view as _view  # noqa: F401  (loaded first: the index_select rule below replaces view's)
from ._table import batch_rule, batch_size_of, materialize, pad_to_rank, wrap_dim

aten = torch.ops.aten


def _logical_dim(x: torch.Tensor, dim: int) -> int:
    """Physical dim (batch at 0) for a logical ``dim`` of the batched ``x``."""
    return wrap_dim(dim, x.dim() - 1) + 1


# ----------------------------------------------------------------------------------------------------------
# gather / scatter: self, index (and src) share their rank; batch all of them at 0 and shift dim.


def _scalar_safe(tensors: list[Any]) -> tuple[list[Any], bool]:
    """Give logically 0-dim tensors (physical rank 1) a size-1 dim so ``dim`` 0 of them is addressable."""
    scalar = tensors[0].dim() == 1
    if scalar:
        tensors = [t.unsqueeze(1) if isinstance(t, torch.Tensor) else t for t in tensors]
    return tensors, scalar


@batch_rule(aten.gather.default)
def gather(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    size = batch_size_of(args, bdims)
    x = materialize(args[0], bdims[0], size)
    index = materialize(args[2], bdims[2], size)
    (x, index), scalar = _scalar_safe([x, index])
    out = torch.gather(
        x, _logical_dim(x, args[1]), index, sparse_grad=bool(args[3]) if len(args) > 3 else False
    )
    return (out.squeeze(1) if scalar else out), 0


def _scatter(op: Any, inplace: bool) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        size = batch_size_of(args, bdims)
        x = args[0] if inplace else materialize(args[0], bdims[0], size)
        index = materialize(args[2], bdims[2], size)
        src = args[3]
        if isinstance(src, torch.Tensor):
            src = materialize(src, bdims[3], size)
        scalar = x.dim() == 1
        if scalar:
            x, index = x.unsqueeze(1), index.unsqueeze(1)
            src = src.unsqueeze(1) if isinstance(src, torch.Tensor) else src
        out = op(x, _logical_dim(x, args[1]), index, src, *args[4:], **kwargs)
        return (out.squeeze(1) if scalar and not inplace else out), 0

    return rule


def _register_scatter() -> None:
    for packet in (aten.scatter, aten.scatter_, aten.scatter_add, aten.scatter_add_, aten.scatter_reduce):
        inplace = packet._qualified_op_name.endswith("_")
        for name in packet.overloads():  # type: ignore[no-untyped-call]
            overload = getattr(packet, name)
            if name != "out" and not name.endswith("_out"):
                batch_rule(overload)(_scatter(overload, inplace))


_register_scatter()


# ----------------------------------------------------------------------------------------------------------
# index_select and embedding: offset batched indices into the flattened batch. See NOTE [batched indices
# index a flattened batch].


def _offsets(index: torch.Tensor, n: int) -> torch.Tensor:
    """``index`` (batch at 0) shifted by ``b * n`` for example ``b``."""
    steps = torch.arange(index.shape[0], device=index.device, dtype=index.dtype) * n
    return index + steps.reshape(-1, *([1] * (index.dim() - 1)))


def to_front_index(index: torch.Tensor, bdim: Any) -> torch.Tensor:
    """``index`` with its batch dim first (unbatched ones unchanged)."""
    return index if bdim in (None, 0) else index.movedim(bdim, 0)


@batch_rule(aten.index_select.default)
def index_select(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    size = batch_size_of(args, bdims)
    x = materialize(args[0], bdims[0], size)
    scalar = x.dim() == 1
    if scalar:
        x = x.unsqueeze(1)
    dim = _logical_dim(x, args[1])
    if bdims[2] is None:
        out = x.index_select(dim, args[2])
        return (out.squeeze(1) if scalar else out), 0
    index = args[2].reshape(size, -1)  # a logically 0-dim index selects one entry
    moved = x.movedim(dim, 1)
    n = moved.shape[1]
    flat = moved.reshape(size * n, *moved.shape[2:])
    picked = flat.index_select(0, _offsets(index, n).reshape(-1)).reshape(
        size, index.shape[1], *moved.shape[2:]
    )
    out = picked.movedim(1, dim)
    return (out.squeeze(1) if scalar else out), 0


@batch_rule(aten.embedding.default)
def embedding(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    weight, indices = args[0], args[1]
    padding_idx = args[2] if len(args) > 2 else -1
    scale = bool(args[3]) if len(args) > 3 else False
    sparse = bool(args[4]) if len(args) > 4 else False
    size = batch_size_of(args, bdims)
    if bdims[0] is None and not scale:
        # Row lookups are independent, so an unbatched table serves every example's indices at once.
        return aten.embedding.default(
            weight, to_front_index(indices, bdims[1]), padding_idx, scale, sparse
        ), 0
    # Per-example tables (or per-example frequency scaling): index the flattened (B * V, D) table.
    table = materialize(weight, bdims[0], size)
    n = table.shape[1]
    flat = table.reshape(size * n, *table.shape[2:])
    index = materialize(indices, bdims[1], size)
    out = aten.embedding.default(flat, _offsets(index, n), -1, scale, sparse)
    if padding_idx >= 0:
        # The padding row gets no gradient: the same values, cut off from autograd where index == padding_idx.
        pad = (index == padding_idx).unsqueeze(-1)
        out = torch.where(pad, out.detach(), out)
    return out, 0


@batch_rule(aten.embedding_dense_backward.default)
def embedding_dense_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    grad, indices, num_weights, padding_idx, scale = args
    size = batch_size_of(args, bdims)
    g = materialize(grad, bdims[0], size)
    index = materialize(indices, bdims[1], size)
    out = aten.embedding_dense_backward.default(
        g, _offsets(index, num_weights), size * num_weights, -1, scale
    )
    out = out.reshape(size, num_weights, *out.shape[1:])
    if padding_idx >= 0:
        keep = torch.arange(num_weights, device=out.device) != padding_idx  # no host-to-device copy
        out = out * keep.to(out.dtype).reshape(1, num_weights, *([1] * (out.dim() - 2)))
    return out, 0


# ----------------------------------------------------------------------------------------------------------
# Advanced indexing: aten.index.Tensor, index_put. See NOTE [batched indices index a flattened batch].


def _has_batched(bdims: Any) -> bool:
    return any(b is not None for b in bdims)


def _is_bool(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)


def _arange_indices(
    indices: list[Any], ibdims: Any, size: int, device: torch.device
) -> tuple[list[Any], int, int]:
    """``[arange(B), *indices]`` broadcastable together; with the rank of the broadcast index shape and
    where (logically) the indexed block lands: its first position if the user's indices are adjacent, else 0.
    """
    present = [i for i, t in enumerate(indices) if t is not None]
    adjacent = present == list(range(present[0], present[-1] + 1))
    rank = max(t.dim() - (b is not None) for t, b in zip(indices, ibdims) if t is not None)
    new: list[Any] = []
    for t, b in zip(indices, ibdims):
        if t is None or b is None:
            new.append(t)
        else:
            new.append(pad_to_rank(to_front_index(t, b), rank))
    batch = torch.arange(size, device=device).reshape(size, *([1] * rank))
    return [batch, *new], rank, present[0] if adjacent else 0


@batch_rule(aten.index.Tensor)
def index(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    indices, ibdims = list(args[1]), bdims[1]
    size = batch_size_of(args, bdims)
    if not _has_batched(ibdims):
        # Batch dim last: it is then a trailing sliced dim wherever the indexed block lands.
        out = aten.index.Tensor(args[0].movedim(bdims[0], -1), indices)
        return out, out.dim() - 1
    if any(_is_bool(t) for t in indices):
        return NotImplemented, None
    x = materialize(args[0], bdims[0], size)
    new, rank, where = _arange_indices(indices, ibdims, size, x.device)
    # The arange makes the indices non-adjacent or puts them first: the result is (B, *broadcast, *rest).
    out = aten.index.Tensor(x, new)
    if where:
        out = out.movedim(list(range(1, rank + 1)), list(range(where + 1, where + rank + 1)))
    return out, 0


def _index_put(op: Any, inplace: bool) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        indices, ibdims = list(args[1]), bdims[1]
        values = args[2]
        accumulate = bool(args[3]) if len(args) > 3 else False
        size = batch_size_of(args, bdims)
        if inplace:
            x = args[0]
        elif bdims[0] is None:
            x = args[0].unsqueeze(0).expand(size, *args[0].shape).clone()
        else:
            x = args[0].movedim(bdims[0], 0)
        if not _has_batched(ibdims):
            # Batch dim last, as in the index rule: values broadcast against (*indexed_shape, B).
            v = values.movedim(bdims[2], -1) if bdims[2] is not None else values.unsqueeze(-1)
            out = op(x.movedim(0, -1), indices, v, accumulate)
            return (x if inplace else out.movedim(-1, 0)), 0
        if any(_is_bool(t) for t in indices):
            return NotImplemented, None
        new, rank, where = _arange_indices(indices, ibdims, size, x.device)
        # Values broadcast against the logical result of x[indices]; reorder them like the index rule.
        result_rank = rank + (x.dim() - 1) - sum(t is not None for t in indices)
        v = pad_to_rank(materialize(values, bdims[2], size), result_rank)
        if where:
            v = v.movedim(list(range(where + 1, where + rank + 1)), list(range(1, rank + 1)))
        out = op(x, new, v, accumulate)
        return (x if inplace else out), 0

    return rule


batch_rule(aten.index_put.default)(_index_put(aten.index_put.default, False))
batch_rule(aten.index_put_.default)(_index_put(aten.index_put_.default, True))
batch_rule(aten._index_put_impl_.default)(_index_put(aten._index_put_impl_.default, True))


def _index_add(inplace: bool) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        size = batch_size_of(args, bdims)
        x = materialize(args[0], bdims[0], size)
        source = materialize(args[3], bdims[3], size)
        scalar = x.dim() == 1
        if scalar:
            x, source = x.unsqueeze(1), source.unsqueeze(1) if source.dim() == 1 else source
        dim = _logical_dim(x, args[1])
        alpha = kwargs.get("alpha", 1)
        if bdims[2] is None:
            out = x.index_add(dim, args[2], source, alpha=alpha)
        else:
            moved = x.movedim(dim, 1)
            n = moved.shape[1]
            src = source.movedim(dim, 1) if source.dim() == x.dim() else source.unsqueeze(1)
            flat = moved.reshape(size * n, *moved.shape[2:])
            index = _offsets(args[2].reshape(size, -1), n).reshape(-1)
            added = flat.index_add(0, index, src.reshape(-1, *src.shape[2:]), alpha=alpha)
            out = added.reshape(moved.shape).movedim(1, dim)
        if scalar:
            out = out.squeeze(1)
        if inplace:
            args[0].copy_(out)
            return args[0], 0
        return out, 0

    return rule


batch_rule(aten.index_add.default)(_index_add(False))
batch_rule(aten.index_add_.default)(_index_add(True))
