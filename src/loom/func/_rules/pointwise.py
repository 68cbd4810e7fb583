"""Pointwise ops with broadcasting. Ops tagged ``torch.Tag.pointwise`` get this rule without registration."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from ._table import RULES, Rule, batch_rule, pad_to_rank, register_each, to_front

aten = torch.ops.aten


def _category(dtype: torch.dtype) -> int:
    if dtype == torch.bool:
        return 0
    if dtype.is_complex:
        return 3
    if dtype.is_floating_point:
        return 2
    return 1


def _fix_zero_dim_dtypes(args: list[Any], bdims: Any, ranks: list[int]) -> None:
    """Cast logically 0-dim batched tensors so type promotion sees them as 0-dim, as the user wrote them.

    Physically they have the batch dimension, and a dimensioned tensor wins type promotion over a 0-dim one
    of the same category: ``float32[3] * float64[]`` must stay float32.
    """
    dimensioned = [a.dtype for a, r in zip(args, ranks) if r > 0]
    zero_dim = [a.dtype for a, r in zip(args, ranks) if r == 0]
    if not zero_dim:
        return
    pz = functools.reduce(torch.promote_types, zero_dim)
    if dimensioned:
        pd = functools.reduce(torch.promote_types, dimensioned)
        target = pd if _category(pz) <= _category(pd) else torch.promote_types(pd, pz)
    else:
        target = pz
    for i, (a, b, r) in enumerate(zip(args, bdims, ranks)):
        if b is not None and r == 0 and a.dtype != target and a.dtype != torch.bool:
            args[i] = a.to(target)


def pointwise_rule(op: Any) -> Rule:
    """The broadcasting rule for one pointwise op: batch dims first, batched inputs padded to a common rank."""

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        rank = 0
        ranks: list[int] = []
        mixed = False
        uneven = False
        dtype = None
        for a, b in zip(args, bdims):
            if isinstance(a, torch.Tensor):
                r = a.dim() - (b is not None)
                if r != rank and ranks:
                    uneven = True
                ranks.append(r)
                if r > rank:
                    rank = r
                if dtype is None:
                    dtype = a.dtype
                elif a.dtype != dtype:
                    mixed = True
            else:
                ranks.append(-1)
        if not uneven and not mixed:
            # Batch dims are first and every tensor has the same logical rank: unbatched ones broadcast.
            return op(*args, **kwargs), 0
        new = list(args)
        for i, (a, b) in enumerate(zip(args, bdims)):
            if b is not None:
                new[i] = pad_to_rank(to_front(a, b), rank)
        if mixed and rank > 0:
            _fix_zero_dim_dtypes(new, bdims, ranks)
        return op(*new, **kwargs), 0

    return rule


register_each(
    pointwise_rule,
    aten._to_copy,
    aten.fill_,
    aten.zero_,
    aten.copy_,
    aten.masked_fill_,
    aten.masked_fill,
    aten.where,
    aten.hardtanh_backward,
    aten.leaky_relu_backward,
    aten.elu_backward,
    aten.softplus_backward,
    aten.hardswish_backward,
    aten.hardsigmoid_backward,
    aten.rrelu_with_noise_backward,
    aten.gelu_backward,
    aten.threshold_backward,
    aten.clone,
    aten.lift_fresh,
    aten.alias,
    aten.positive,
    aten.resolve_conj,
    aten.resolve_neg,
)
# ``clone``/``_to_copy`` take a memory_format: channels_last of a 4-d logical tensor is a 5-d physical one.
_base_clone = RULES[aten.clone.default]
_base_to_copy = RULES[aten._to_copy.default]


def _drop_memory_format(base: Rule) -> Rule:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        fmt = kwargs.get("memory_format")
        if fmt is not None and fmt not in (torch.preserve_format, torch.contiguous_format):
            kwargs = dict(kwargs, memory_format=torch.preserve_format)
        return base(args, bdims, **kwargs)

    return rule


RULES[aten.clone.default] = _drop_memory_format(_base_clone)
RULES[aten._to_copy.default] = _drop_memory_format(_base_to_copy)
for _op in (aten.empty_like, aten.zeros_like, aten.ones_like, aten.full_like):
    register_each(lambda op: _drop_memory_format(pointwise_rule(op)), _op)


def _elementwise_prims() -> list[tuple[Any, Any]]:
    """(prims packet, aten default overload) for prims named like an aten pointwise op.

    torch's Python references call prims inside some backward formulas; a prim on equal shapes is the aten
    op of the same name, so the batched call goes to the aten op, which broadcasts.
    """
    found = []
    for name in dir(torch.ops.prims):
        packet = getattr(torch.ops.prims, name, None)
        aten_packet = getattr(aten, name, None)
        if not isinstance(packet, torch._ops.OpOverloadPacket) or aten_packet is None:
            continue
        overloads = [getattr(aten_packet, o) for o in aten_packet.overloads()]
        pointwise = [o for o in overloads if torch.Tag.pointwise in o.tags]
        if pointwise:
            found.append((packet, getattr(aten_packet, "default", pointwise[0])))
    return found


def _packet_call(packet: Any) -> Any:
    return lambda *args, **kwargs: packet(*args, **kwargs)


def _via_aten(aten_op: Any) -> Callable[[Any], Rule]:
    return lambda _prim_overload: pointwise_rule(_packet_call(aten_op.overloadpacket))


for _prim, _aten_op in _elementwise_prims():
    register_each(_via_aten(_aten_op), _prim)


@batch_rule(torch.ops.prims.convert_element_type.default)
def convert_element_type(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    return args[0].to(args[1]), bdims[0]


@batch_rule(torch.ops.prims.broadcast_in_dim.default)
def broadcast_in_dim(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = to_front(args[0], bdims[0])
    shape, dims = args[1], args[2]
    return torch.ops.prims.broadcast_in_dim.default(x, [x.shape[0], *shape], [0, *[d + 1 for d in dims]]), 0
