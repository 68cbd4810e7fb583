"""Checks shared by the rule-family tests: float64 everywhere, vmap(vjp) against torch.func, rule paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.func as tf

import loom.func as lf
from loom.func._batched import PATH_USED

from .._checks import assert_trees_close, check_vmap, loop_vmap

__all__ = ["assert_rule_used", "check_all", "check_vmap", "check_vmap_vjp"]


def check_vmap_vjp(
    func: Callable[..., Any],
    args: list[Any],
    in_dims: Any,
    n_diff: int | None = None,
    torch_func: bool = True,
) -> None:
    """Per-example vjp with respect to the first ``n_diff`` inputs (default all): loom vs torch.func vs loop.

    ``torch_func=False`` skips torch.func, for the few cases where its vmap is wrong or raises.
    """
    n = len(args) if n_diff is None else n_diff

    def run_with(lib: Any) -> Callable[..., Any]:
        def run(*xs: Any) -> Any:
            out, fn = lib.vjp(lambda *d: func(*d, *xs[n:]), *xs[:n])
            return fn(torch.cos(out))  # a cotangent that differs per element

        return run

    ours = lf.vmap(run_with(lf), in_dims)(*args)
    if torch_func:
        assert_trees_close(ours, tf.vmap(run_with(tf), in_dims)(*args))
    flat_dims = in_dims if isinstance(in_dims, (tuple, list)) else [in_dims] * len(args)
    assert_trees_close(ours, loop_vmap(run_with(tf), flat_dims, args))


def check_all(
    func: Callable[..., Any],
    args: list[Any],
    in_dims: Any,
    n_diff: int | None = None,
    torch_func: bool = True,
) -> None:
    """vmap and vmap(vjp) of ``func``: loom == torch.func (unless ``torch_func=False``) == a per-example loop."""
    if torch_func:
        check_vmap(func, args, in_dims)
    else:
        flat_dims = in_dims if isinstance(in_dims, (tuple, list)) else [in_dims] * len(args)
        assert_trees_close(lf.vmap(func, in_dims)(*args), loop_vmap(func, flat_dims, args))
    check_vmap_vjp(func, args, in_dims, n_diff, torch_func)


def assert_rule_used(*ops: Any) -> None:
    """Each op was batched by a rule (not a decomposition or the fallback) at least once this session."""
    for op in ops:
        assert PATH_USED.get(op) == "rule", f"{op}: {PATH_USED.get(op, 'never reached')}"
