"""Which parameters a forward's outputs can reach: a walk over the autograd graph."""

from __future__ import annotations

from typing import Any

import torch


def _accumulate_grad_type() -> type:
    leaf = torch.zeros(1, requires_grad=True)
    node = leaf.expand(1).grad_fn
    assert node is not None
    return type(node.next_functions[0][0])


_ACCUMULATE_GRAD = _accumulate_grad_type()


def reached_parameters(outputs: list[torch.Tensor], index_of: dict[int, int]) -> set[int]:
    """Indices (by ``index_of[id(param)]``) of the parameters whose gradient ``outputs`` depend on."""
    reached: set[int] = set()
    stack: list[Any] = []
    for t in outputs:
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif t.requires_grad and id(t) in index_of:
            reached.add(index_of[id(t)])
    seen: set[Any] = set()
    while stack:
        node: Any = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.__class__ is _ACCUMULATE_GRAD:
            i = index_of.get(id(_variable(node)))
            if i is not None:
                reached.add(i)
            continue
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                stack.append(nxt)
    return reached


def _variable(node: Any) -> Any:
    return node.variable
