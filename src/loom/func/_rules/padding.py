"""Padding: constant_pad_nd, reflection and replication pads (1d/2d/3d), and their backward ops.

All of them pad trailing dims only, so a batch dim in front is left alone. The reflection/replication kernels
take ``(C, *S)`` or ``(N, C, *S)``: the batch is folded into N.

Circular padding needs no rule: its composite (decomposed above vmap) writes slices into a fresh
``new_empty`` tensor, which is batched (NOTE [new_* factories are batched] in ``core.py``); its backward is
``slice_backward`` (``view.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, current_level, materialize

aten = torch.ops.aten


@batch_rule(aten.constant_pad_nd.default)
def constant_pad_nd(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = materialize(args[0], bdims[0], batch_size_of(args, bdims))
    pad = args[1]
    if len(pad) % 2 or len(pad) // 2 > x.dim() - 1:
        raise RuntimeError(
            f"{current_level().call}: constant_pad_nd got pad {list(pad)} for a {x.dim() - 1}-dim input; pad "
            "needs an even length of at most twice the number of dims"
        )
    return aten.constant_pad_nd.default(x, pad, *args[2:]), 0


def _fold(x: torch.Tensor, k: int) -> torch.Tensor:
    """Merge every dim before the last ``k + 1`` (channels and ``k`` spatial dims) into one N dim."""
    return x.reshape(-1, *x.shape[x.dim() - k - 1 :])


def _unfold(y: torch.Tensor, lead: torch.Size) -> torch.Tensor:
    return y.reshape(*lead, *y.shape[1:])


def _pad_rule(op: Any, k: int, backward: bool) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        size = batch_size_of(args, bdims)
        tensors = [materialize(a, b, size) for a, b in zip(args[: 1 + backward], bdims[: 1 + backward])]
        if tensors[-1].dim() - 1 not in (k + 1, k + 2):
            return NotImplemented, None  # torch's per-example call raises its own shape error
        lead = tensors[0].shape[: tensors[0].dim() - k - 1]
        out = op(*[_fold(t, k) for t in tensors], *args[1 + backward :], **kwargs)
        return _unfold(out, lead), 0

    return rule


def _register() -> None:
    for kind in ("reflection", "replication"):
        for k in (1, 2, 3):
            forward = getattr(aten, f"{kind}_pad{k}d").default
            backward = getattr(aten, f"{kind}_pad{k}d_backward").default
            batch_rule(forward)(_pad_rule(forward, k, False))
            batch_rule(backward)(_pad_rule(backward, k, True))


_register()
