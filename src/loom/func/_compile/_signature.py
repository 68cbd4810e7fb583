"""Input signatures: what a traced graph depends on, as a hashable cache key.

NOTE [what a compiled graph depends on]
A graph traced by ``make_fx`` bakes in everything that is not a tensor input: the pytree structure of the
arguments, every Python scalar and other non-tensor leaf, and for each tensor its dtype, device, layout and
``requires_grad``; with static shapes also its sizes and strides (``dynamic=True`` keeps only the number of
dims and relies on the shape guards of the symbolic trace instead). Global state that changes what the
function computes is part of the key too: grad mode and the default dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def flatten_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], Any]:
    """The leaves of ``(args, kwargs)`` and their structure."""
    return pytree.tree_flatten((args, kwargs))


def _leaf_key(leaf: Any, dynamic: bool, keep: list[Any]) -> Any:
    if isinstance(leaf, torch.Tensor):
        if type(leaf) not in _PLAIN_TENSORS:
            return ("subclass", type(leaf))
        shape: Any = leaf.dim() if dynamic else (tuple(leaf.shape), leaf.stride())
        return (leaf.dtype, leaf.device, leaf.layout, leaf.requires_grad, shape)
    if isinstance(leaf, float):
        return (float, leaf.hex())  # tells -0.0 from 0.0, and nan equals itself
    if isinstance(leaf, (bool, int, str, type(None))):
        return (type(leaf), leaf)
    try:
        hash(leaf)
    except TypeError:
        keep.append(leaf)  # keep it alive so its id stays unique while the entry exists
        return ("id", type(leaf), id(leaf))
    return (type(leaf), leaf)


def signature(leaves: list[Any], spec: Any, dynamic: bool, keep: list[Any]) -> tuple[Any, ...]:
    """The cache key of a call. See NOTE [what a compiled graph depends on]."""
    return (
        spec,
        torch.is_grad_enabled(),
        torch.get_default_dtype(),
        tuple(_leaf_key(leaf, dynamic, keep) for leaf in leaves),
    )


def has_foreign_tensors(leaves: list[Any]) -> bool:
    """True if a tensor leaf is a subclass (a Loom wrapper, a fake tensor...) that cannot be traced as input."""
    return any(isinstance(leaf, torch.Tensor) and type(leaf) not in _PLAIN_TENSORS for leaf in leaves)


def describe(leaves: list[Any], spec: Any) -> str:
    """A short human-readable form of the inputs, for warnings and errors: ``(Tensor[3, 4], 2)``."""

    def one(leaf: Any) -> str:
        if isinstance(leaf, torch.Tensor):
            return f"Tensor[{', '.join(str(s) for s in leaf.shape)}]"
        return repr(leaf)

    args, kwargs = pytree.tree_unflatten([one(leaf) for leaf in leaves], spec)
    parts = [str(a) if isinstance(a, str) else repr(a).replace("'", "") for a in args]
    parts += [f"{k}={v}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"
