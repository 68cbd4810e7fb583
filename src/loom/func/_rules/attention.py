"""Fused attention kernels: the vmap dim folds into the kernels' leading batch dim N.

NOTE [no decomposition for fused attention]: torch's decompositions of these ops return auxiliary outputs
(logsumexp) that the fused backward kernels do not expect, which made per-example gradients wrong by ~1e-6 in
float64. Ops without a rule here run per example (see ``_NO_DECOMPOSITION`` in ``_batched.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, materialize

aten = torch.ops.aten


def _fold(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _unfold(y: torch.Tensor, size: int) -> torch.Tensor:
    return y.reshape(size, y.shape[0] // size, *y.shape[1:])


def _fold_all(op: Any, n_tensors: int) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        if kwargs.get("attn_mask") is not None:
            return NotImplemented, None
        size = batch_size_of(args, bdims)
        if args[0].dim() - (bdims[0] is not None) != 4:  # inputs without N: (H, L, E)
            return NotImplemented, None
        new = [_fold(materialize(a, b, size)) for a, b in zip(args[:n_tensors], bdims[:n_tensors])]
        out = op(*new, *args[n_tensors:], **kwargs)
        return tuple(_unfold(o, size) for o in out), 0

    return rule


batch_rule(aten._scaled_dot_product_flash_attention_for_cpu.default)(
    _fold_all(aten._scaled_dot_product_flash_attention_for_cpu.default, 3)
)
batch_rule(aten._scaled_dot_product_flash_attention_for_cpu_backward.default)(
    _fold_all(aten._scaled_dot_product_flash_attention_for_cpu_backward.default, 6)
)
