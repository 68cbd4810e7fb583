"""Shared checks: compare loom.func with torch.func and with per-example loops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.func as tf
from torch.utils import _pytree as pytree

import loom.func as lf


def assert_trees_close(actual: Any, expected: Any, **tol: Any) -> None:
    """Same pytree structure and every leaf close (tensors) or equal (others)."""
    a_leaves, a_spec = pytree.tree_flatten(actual)
    e_leaves, e_spec = pytree.tree_flatten(expected)
    assert a_spec == e_spec, f"structure differs: {a_spec} vs {e_spec}"
    for a, e in zip(a_leaves, e_leaves):
        if isinstance(e, torch.Tensor):
            assert isinstance(a, torch.Tensor), f"expected a tensor, got {type(a)}"
            assert type(a) is torch.Tensor, f"a wrapper leaked out: {type(a)}"
            torch.testing.assert_close(a, e, **tol)
        else:
            assert a == e


def _select(x: Any, d: Any, i: int) -> Any:
    return x if d is None else x.select(d, i)


def loop_vmap(func: Callable[..., Any], in_dims: Sequence[Any], args: Sequence[Any]) -> Any:
    """vmap by a Python loop over examples (flat in_dims, one per positional arg; out_dims 0)."""
    size = next(a.shape[d] for a, d in zip(args, in_dims) if d is not None)
    outs = [func(*[_select(a, d, i) for a, d in zip(args, in_dims)]) for i in range(size)]
    leaves = [pytree.tree_flatten(o)[0] for o in outs]
    spec = pytree.tree_flatten(outs[0])[1]
    return pytree.tree_unflatten([torch.stack(list(col)) for col in zip(*leaves)], spec)


def check_vmap(func: Callable[..., Any], args: Sequence[Any], in_dims: Any = 0, **tol: Any) -> Any:
    """loom vmap == torch.func vmap == the per-example loop; returns loom's result."""
    args = tuple(args)
    ours = lf.vmap(func, in_dims)(*args)
    theirs = tf.vmap(func, in_dims)(*args)
    assert_trees_close(ours, theirs, **tol)
    flat_dims = in_dims if isinstance(in_dims, (tuple, list)) else [in_dims] * len(args)
    assert_trees_close(ours, loop_vmap(func, flat_dims, args), **tol)
    return ours
