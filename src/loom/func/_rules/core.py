"""Ops that need vmap itself: detach, data-dependent ops (errors), ``new_*`` factories."""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, current_level, to_front

aten = torch.ops.aten


@batch_rule(aten.detach.default)
def detach(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    # NOTE [detach for saved tensors]: autograd saving a BatchedTensor for backward calls aten.detach by a
    # path that leaves ADInplaceOrView out of the excluded keys. That detach belongs to the wrapper's own
    # autograd layer only, so it keeps the same physical tensor (and its history in outer levels); a user's
    # ``x.detach()`` goes through autograd, which excludes ADInplaceOrView, and detaches every level.
    x = args[0]
    if torch._C._dispatch_tls_is_dispatch_key_excluded(torch._C.DispatchKey.ADInplaceOrView):
        return x.detach(), bdims[0]
    return x, bdims[0]


def _new_factory_rule(op: Any, strided: bool) -> Any:
    # NOTE [new_* factories are batched]: ``x.new_zeros(size)`` on a batched ``x`` gives every example its own
    # buffer (physical ``(B, *size)``), as torch.func does. Backward formulas and decompositions
    # (index_select's backward, circular padding, autograd's CopySlices) allocate with ``new_*`` and then
    # write per-example values into the buffer in place; an unbatched buffer would refuse those writes.
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        x = to_front(args[0], bdims[0])
        size = list(args[1])
        batch = [x.shape[0], *size]
        if not strided:
            return op(x, batch, *args[2:], **kwargs), 0
        stride = list(args[2])
        # One example's extent in storage: each example gets its own block, laid out as asked.
        extent = 0 if 0 in size else 1 + sum((n - 1) * s for n, s in zip(size, stride))
        return op(x, batch, [extent, *stride], *args[3:], **kwargs), 0

    return rule


for _packet in (aten.new_empty, aten.new_zeros, aten.new_ones, aten.new_full, aten.new_empty_strided):
    _ov = _packet.default
    batch_rule(_ov)(_new_factory_rule(_ov, _packet is aten.new_empty_strided))


def _data_dependent(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    raise RuntimeError(
        f"{current_level().call}: vmap does not support .item(), bool() or other data-dependent Python "
        "control flow on a batched tensor: the value differs per example. Use torch.where / masking "
        "instead, or move the check outside vmap."
    )


batch_rule(aten._local_scalar_dense, aten.is_nonzero, aten.equal, aten.item)(_data_dependent)


@batch_rule(aten._has_same_storage_numel.default)
def has_same_storage_numel(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    # forward AD asks before using a tangent as is; a BatchedTensor has no storage of its own to compare,
    # and a tangent laid out differently from its primal is still correct for the batched ops.
    return True, None


@batch_rule(aten.is_same_size.default)
def is_same_size(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    a, b = args[0], args[1]
    shape_a = a.shape[1:] if bdims[0] is not None else a.shape
    shape_b = b.shape[1:] if bdims[1] is not None else b.shape
    return shape_a == shape_b, None


@batch_rule(aten.resize_.default, aten.resize_as_.default, aten.set_.source_Tensor, aten.set_.default)
def resize(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    raise RuntimeError(
        f"{current_level().call}: in-place resize/set of a batched tensor is not supported under vmap; "
        "build a new tensor instead"
    )
