"""Input signatures: what a traced graph depends on, as a hashable cache key.

NOTE [what a compiled graph depends on]
A graph traced by ``make_fx`` bakes in everything that is not a tensor input: the pytree structure of the
arguments, every Python scalar and other non-tensor leaf, and for each tensor its dtype, device, layout and
``requires_grad``; with static shapes also its sizes and strides (``dynamic=True`` keeps only the number of
dims and relies on the shape guards of the symbolic trace instead). Global state that changes what the
function computes is part of the key too: grad mode and the default dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils import _pytree as pytree

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


# NOTE [a cheap pytree]
# ``torch.utils._pytree`` costs tens of microseconds per call to flatten and to hash a ``TreeSpec``, more
# than a cached small graph takes to run. Plain tuples, lists and dicts (the common containers) are
# flattened here into a structure of nested plain tuples, which hashes fast; any other registered pytree
# node (namedtuples, OrderedDict, custom nodes) is handed to ``torch.utils._pytree`` as a whole.


def flatten(obj: Any, leaves: list[Any]) -> Any:
    """Append the leaves of ``obj`` to ``leaves`` and return its structure. See NOTE [a cheap pytree]."""
    kind = type(obj)
    if kind is tuple:
        return ("t", tuple([flatten(o, leaves) for o in obj]))
    if kind is list:
        return ("l", tuple([flatten(o, leaves) for o in obj]))
    if kind is dict:
        return ("d", tuple(obj), tuple([flatten(v, leaves) for v in obj.values()]))
    if isinstance(obj, (tuple, list, dict)) or kind in pytree.SUPPORTED_NODES:
        sub, spec = pytree.tree_flatten(obj)
        leaves.extend(sub)
        return ("p", spec, len(sub))
    leaves.append(obj)
    return None


def unflatten(structure: Any, leaves: Iterator[Any]) -> Any:
    """The inverse of :func:`flatten`, taking leaves from an iterator."""
    if structure is None:
        return next(leaves)
    kind = structure[0]
    if kind == "t":
        return tuple([unflatten(s, leaves) for s in structure[1]])
    if kind == "l":
        return [unflatten(s, leaves) for s in structure[1]]
    if kind == "d":
        return dict(zip(structure[1], [unflatten(s, leaves) for s in structure[2]]))
    return pytree.tree_unflatten([next(leaves) for _ in range(structure[2])], structure[1])


def flatten_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], Any]:
    """The leaves of ``(args, kwargs)`` and their structure."""
    leaves: list[Any] = []
    structure = (flatten(args, leaves), flatten(kwargs, leaves))
    return leaves, structure


def unflatten_inputs(leaves: list[Any], structure: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` from leaves and the structure of :func:`flatten_inputs`."""
    it = iter(leaves)
    return unflatten(structure[0], it), unflatten(structure[1], it)


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

    args, kwargs = unflatten_inputs([one(leaf) for leaf in leaves], spec)
    parts = [str(a) if isinstance(a, str) else repr(a).replace("'", "") for a in args]
    parts += [f"{k}={v}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"
