"""The matmul family: mm, bmm, mv, dot, addmm, addmv, baddbmm, addbmm, addr.

Batched operands get their batch dim first and ``torch.matmul`` broadcasts it, so one rule covers every
batched/unbatched combination without copies.
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, pad_to_rank, to_front

aten = torch.ops.aten


def _mat(args: Any, bdims: Any, i: int) -> torch.Tensor:
    """Operand ``i`` for matmul: batched ones with the batch dim first, unbatched ones as they are."""
    return to_front(args[i], bdims[i])


@batch_rule(aten.mm.default)
def mm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    # (n, k) @ (B, k, m) broadcasts the unbatched matrix with stride 0 (a view, no copy) into one batched
    # matmul whose result is contiguous. Folding B into one large matmul instead, (B, m, k) @ (k, n), left a
    # transposed result that made every later op of an ensemble read strided memory (BENCHMARKS.md).
    return torch.matmul(_mat(args, bdims, 0), _mat(args, bdims, 1)), 0


@batch_rule(aten.bmm.default)
def bmm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    a, b = _mat(args, bdims, 0), _mat(args, bdims, 1)
    if bdims[0] is not None and bdims[1] is not None:
        return torch.matmul(a, b), 0
    if bdims[1] is None:
        size, g, n, k = a.shape
        out = torch.bmm(a.transpose(0, 1).reshape(g, size * n, k), b)
        return out.reshape(g, size, n, -1).transpose(0, 1), 0
    size, g, k, m = b.shape
    out = torch.bmm(a, b.permute(1, 2, 0, 3).reshape(g, k, size * m))
    return out.reshape(g, a.shape[1], size, m).permute(2, 0, 1, 3), 0


@batch_rule(aten.mv.default)
def mv(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    a, v = _mat(args, bdims, 0), _mat(args, bdims, 1)
    if bdims[1] is None:
        return torch.matmul(a, v), 0
    if bdims[0] is None:
        return torch.matmul(v, a.t()), 0
    return torch.matmul(a, v.unsqueeze(-1)).squeeze(-1), 0


@batch_rule(aten.dot.default)
def dot(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    a, b = _mat(args, bdims, 0), _mat(args, bdims, 1)
    if bdims[0] is not None and bdims[1] is not None:
        return torch.matmul(a.unsqueeze(1), b.unsqueeze(2)).reshape(a.shape[0]), 0
    if bdims[0] is None:
        a, b = b, a
    return torch.matmul(a, b), 0


@batch_rule(aten.addmm.default, aten.baddbmm.default, aten.addmv.default)
def addmm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    bias = args[0]
    beta = kwargs.get("beta", 1)
    alpha = kwargs.get("alpha", 1)
    mv_case = args[2].dim() - (bdims[2] is not None) == 1
    prod_batched = bdims[1] is not None or bdims[2] is not None
    if prod_batched and not mv_case and args[1].dim() - (bdims[1] is not None) == 2:
        return _addmm_fused(args, bdims, beta, alpha), 0
    if mv_case:
        prod, _ = mv(args[1:], bdims[1:])
    else:
        prod, _ = mm(args[1:], bdims[1:])
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return (prod, 0) if prod_batched else (prod.unsqueeze(0).expand(bias.shape[0], *prod.shape), 0)
    rank = prod.dim() - prod_batched
    bias = pad_to_rank(to_front(bias, bdims[0]), rank) if bdims[0] is not None else bias
    if beta != 1:
        bias = bias * beta
    return prod + bias, 0


def _addmm_fused(args: Any, bdims: Any, beta: Any, alpha: Any) -> torch.Tensor:
    """addmm with a batched product as one ``baddbmm``: the bias is added by the matmul itself (as torch's
    addmm does), not by a separate pass over the (B, n, m) result. Unbatched operands expand with stride 0."""
    size = batch_size_of(args, bdims)
    a, b = _mat(args, bdims, 1), _mat(args, bdims, 2)
    if bdims[1] is None:
        a = a.expand(size, *a.shape)
    if bdims[2] is None:
        b = b.expand(size, *b.shape)
    bias = pad_to_rank(to_front(args[0], bdims[0]), 2) if bdims[0] is not None else args[0]
    return torch.baddbmm(bias, a, b, beta=beta, alpha=alpha)


@batch_rule(aten.addbmm.default)
def addbmm(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    if bdims[1] is None and bdims[2] is None:
        prod = torch.bmm(args[1], args[2]).sum(0)  # only the added matrix is batched: one shared product
    else:
        prod = mm(args[1:], bdims[1:])[0].sum(1)
    alpha, beta = kwargs.get("alpha", 1), kwargs.get("beta", 1)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod, 0
    bias = pad_to_rank(to_front(args[0], bdims[0]), 2) if bdims[0] is not None else args[0]
    return prod + (bias * beta if beta != 1 else bias), 0
