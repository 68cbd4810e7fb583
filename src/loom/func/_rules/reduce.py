"""Reductions, scans, softmax and other ops that take a ``dim``: logical dims shift past the batch dim."""

from __future__ import annotations

from typing import Any

import torch

from ._table import Rule, batch_rule, batch_size_of, materialize, register_each, wrap_dim

aten = torch.ops.aten


def _schema_index(op: Any, names: tuple[str, ...]) -> tuple[int | None, bool, Any]:
    """(position, kwarg_only, default) of the first schema argument called one of ``names``."""
    for i, a in enumerate(op._schema.arguments):
        if a.name in names:
            return i, a.kwarg_only, a.default_value if a.has_default_value() else None
    return None, False, None


def _squeeze1(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.squeeze(1) if out.dim() > 1 else out
    if isinstance(out, (tuple, list)):
        return type(out)(_squeeze1(o) for o in out)
    return out


def dim_rule(op: Any) -> Rule:
    """Rule for an op whose Tensor arguments share one shape and which takes ``dim``/``dims``.

    ``dim=None`` or ``dim=[]`` means every logical dim. A logically 0-dim input is given a size-1 dim (and
    ``keepdim=True``) and squeezed back afterwards.
    """
    dim_pos, dim_kw, dim_default = _schema_index(op, ("dim", "dims"))
    keep_pos, keep_kw, _ = _schema_index(op, ("keepdim",))
    tensor_pos = [
        i for i, a in enumerate(op._schema.arguments) if str(a.type) == "Tensor" and not a.kwarg_only
    ]
    if dim_pos is None:
        raise TypeError(f"dim_rule: {op} has no dim argument")

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        args = list(args)
        size = batch_size_of(args, bdims)
        for i in tensor_pos:
            if i < len(args) and args[i] is not None:
                args[i] = materialize(args[i], bdims[i], size)
        rank = args[tensor_pos[0]].dim() - 1
        if dim_kw:
            dim = kwargs.get("dim", dim_default)
        else:
            dim = args[dim_pos] if len(args) > dim_pos else dim_default
        scalar = rank == 0
        if scalar:
            for i in tensor_pos:
                if i < len(args) and args[i] is not None:
                    args[i] = args[i].unsqueeze(1)
        if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0 and op not in _EMPTY_IS_NOOP):
            new_dim: Any = list(range(1, max(rank, 1) + 1))
        elif isinstance(dim, int):
            new_dim = wrap_dim(dim, rank) + 1
        else:
            new_dim = [wrap_dim(d, rank) + 1 for d in dim]
        if dim_kw:
            kwargs["dim"] = new_dim
        else:
            while len(args) <= dim_pos:
                args.append(op._schema.arguments[len(args)].default_value)
            args[dim_pos] = new_dim
        if scalar and keep_pos is not None:
            if keep_kw:
                kwargs["keepdim"] = True
            else:
                while len(args) <= keep_pos:
                    args.append(op._schema.arguments[len(args)].default_value)
                args[keep_pos] = True
        out = op(*args, **kwargs)
        return (_squeeze1(out) if scalar else out), 0

    return rule


_EMPTY_IS_NOOP: set[Any] = set()
register_each(
    dim_rule,
    aten.sum.dim_IntList,
    aten.mean.dim,
    aten.amax.default,
    aten.amin.default,
    aten.var.correction,
    aten.std.correction,
    aten.var_mean.correction,
    aten.std_mean.correction,
    aten.logsumexp.default,
    aten.nansum.default,
    aten.count_nonzero.dim_IntList,
    aten.linalg_vector_norm.default,
    aten.norm.ScalarOpt_dim,
    aten.prod.dim_int,
    aten.max.dim,
    aten.min.dim,
    aten.all.dim,
    aten.any.dim,
    aten.median.dim,
    aten.nanmedian.dim,
    aten.mode.default,
    aten.kthvalue.default,
    aten.cumsum.default,
    aten.cumprod.default,
    aten.logcumsumexp.default,
    aten.cummax.default,
    aten.cummin.default,
    aten._softmax.default,
    aten._log_softmax.default,
    aten._softmax_backward_data.default,
    aten._log_softmax_backward_data.default,
    aten.sort.default,
    aten.sort.stable,
    aten.topk.default,
    aten.flip.default,
    aten.glu.default,
    aten.glu_backward.default,
    aten.var.dim,
    aten.std.dim,
)
for _name in ("all", "any"):
    if "dims" in getattr(aten, _name).overloads():
        register_each(dim_rule, getattr(aten, _name).dims)
_EMPTY_IS_NOOP.add(aten.flip.default)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _full_reduction(reduce_flat: Any) -> Rule:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        x = materialize(args[0], bdims[0], batch_size_of(args, bdims))
        return reduce_flat(_flat(x), *args[1:], **kwargs), 0

    return rule


batch_rule(aten.sum.default)(_full_reduction(lambda x, **kw: aten.sum.dim_IntList(x, [1], False, **kw)))
batch_rule(aten.mean.default)(_full_reduction(lambda x, **kw: aten.mean.dim(x, [1], False, **kw)))
batch_rule(aten.prod.default)(_full_reduction(lambda x, **kw: aten.prod.dim_int(x, 1, False, **kw)))
batch_rule(aten.max.default)(_full_reduction(lambda x: aten.amax.default(x, [1])))
batch_rule(aten.min.default)(_full_reduction(lambda x: aten.amin.default(x, [1])))
batch_rule(aten.all.default)(_full_reduction(lambda x: aten.all.dim(x, 1)))
batch_rule(aten.any.default)(_full_reduction(lambda x: aten.any.dim(x, 1)))
batch_rule(aten.median.default)(_full_reduction(lambda x: aten.median.dim(x, 1)[0]))
batch_rule(aten.nanmedian.default)(_full_reduction(lambda x: aten.nanmedian.dim(x, 1)[0]))
batch_rule(aten.var.default)(
    _full_reduction(lambda x, unbiased=True: aten.var.correction(x, [1], correction=int(unbiased)))
)
batch_rule(aten.std.default)(
    _full_reduction(lambda x, unbiased=True: aten.std.correction(x, [1], correction=int(unbiased)))
)


def _arg_reduction(op: Any) -> Rule:
    dim_rule_ = dim_rule(op)

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is not None:
            return dim_rule_(args, bdims, **kwargs)
        x = args[0]
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        out = op(_flat(x), 1)
        if keepdim:
            out = out.reshape(x.shape[0], *([1] * (x.dim() - 1)))
        return out, 0

    return rule


register_each(_arg_reduction, aten.argmax.default, aten.argmin.default)
