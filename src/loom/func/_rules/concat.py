"""cat and stack: unbatched inputs are expanded (a view) and the dim shifts past the batch dim."""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize, wrap_dim

aten = torch.ops.aten


def _materialize_all(tensors: Any, bdims: Any, size: int) -> list[torch.Tensor]:
    return [materialize(t, b, size) for t, b in zip(tensors, bdims)]


@batch_rule(aten.cat.default)
def cat(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    tensors, tbdims = args[0], bdims[0]
    size = batch_size_of(args, bdims)
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    # torch.cat skips legacy empty 1-d tensors of shape (0,) whatever the other ranks are.
    kept = [
        (t, b) for t, b in zip(tensors, tbdims) if not (t.dim() - (b is not None) == 1 and t.numel() == 0)
    ]
    if not kept:
        kept = list(zip(tensors, tbdims))
    rank = kept[0][0].dim() - (kept[0][1] is not None)
    phys = _materialize_all([t for t, _ in kept], [b for _, b in kept], size)
    return torch.cat(phys, wrap_dim(dim, rank) + 1), 0


@batch_rule(aten.stack.default)
def stack(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    tensors, tbdims = args[0], bdims[0]
    size = batch_size_of(args, bdims)
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    rank = tensors[0].dim() - (tbdims[0] is not None)
    phys = _materialize_all(tensors, tbdims, size)
    return torch.stack(phys, wrap_dim(dim, rank + 1) + 1), 0
