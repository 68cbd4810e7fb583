"""jacrev = vmap(vjp), jacfwd = vmap(jvp), hessian = jacfwd(jacrev), linearize via jvp."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._autodiff import check_argnums, jvp_impl, vjp_impl
from ._calls import LazyCall
from ._vmap import vmap_impl


def _split_args(args: tuple[Any, ...], nums: tuple[int, ...]) -> tuple[list[Any], Any, Callable[..., Any]]:
    """Flat differentiable leaves, their spec, and a function rebuilding all args from new leaves."""
    chosen = tuple(args[i] for i in nums)
    leaves, spec = pytree.tree_flatten(chosen)

    def rebuild(*new_leaves: Any) -> list[Any]:
        new = list(args)
        for i, value in zip(nums, pytree.tree_unflatten(list(new_leaves), spec)):
            new[i] = value
        return new

    return leaves, spec, rebuild


def _basis(leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    """The identity over all leaves' elements, split into one (total, *leaf.shape) block per leaf."""
    total = sum(t.numel() for t in leaves)
    eye = torch.eye(total, dtype=leaves[0].dtype, device=leaves[0].device)
    blocks = []
    start = 0
    for t in leaves:
        blocks.append(eye[:, start : start + t.numel()].reshape(total, *t.shape))
        start += t.numel()
    return blocks


def _structure(jac_blocks: list[list[torch.Tensor]], out_spec: Any, in_spec: Any, argnums: Any) -> Any:
    """jac_blocks[i][j]: d out_i / d in_j, shaped out_i.shape + in_j.shape -> torch.func's nesting."""
    per_output = []
    for row in jac_blocks:
        inner = pytree.tree_unflatten(row, in_spec)  # a tuple, one entry per argnum
        per_output.append(inner[0] if isinstance(argnums, int) else inner)
    return pytree.tree_unflatten(per_output, out_spec)


def jacrev_impl(
    func: Callable[..., Any],
    argnums: Any,
    has_aux: bool,
    chunk_size: int | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    options: dict[str, Any] = {} if argnums == 0 else {"argnums": argnums}
    call = LazyCall("jacrev", func, options, args)
    nums = check_argnums(argnums, len(args), call)
    leaves, in_spec, rebuild = _split_args(args, nums)
    res = vjp_impl(lambda *ls: func(*rebuild(*ls), **kwargs), tuple(leaves), has_aux, {})
    out, vjp_fn = res[0], res[1]
    flat_out, out_spec = pytree.tree_flatten(out)
    if not flat_out:
        raise RuntimeError(f"{call}: the function returned no Tensors")
    basis = _basis(flat_out)
    grads = vmap_impl(
        lambda cts: vjp_fn(pytree.tree_unflatten(list(cts), out_spec)),
        0,
        0,
        "error",
        chunk_size,
        (tuple(basis),),
        {},
    )
    # grads[j]: (total, *in_j.shape); rows of output i are [start_i, start_i + numel_i).
    jac_blocks = []
    start = 0
    for o in flat_out:
        n = o.numel()
        jac_blocks.append([g[start : start + n].reshape(*o.shape, *g.shape[1:]) for g in grads])
        start += n
    jac = _structure(jac_blocks, out_spec, in_spec, argnums)
    return (jac, res[2]) if has_aux else jac


def jacfwd_impl(
    func: Callable[..., Any],
    argnums: Any,
    has_aux: bool,
    randomness: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    options: dict[str, Any] = {} if argnums == 0 else {"argnums": argnums}
    call = LazyCall("jacfwd", func, options, args)
    nums = check_argnums(argnums, len(args), call)
    leaves, in_spec, rebuild = _split_args(args, nums)
    for t in leaves:
        if not isinstance(t, torch.Tensor):
            raise RuntimeError(f"{call}: expected the differentiated inputs to be Tensors, got {t!r}")
    basis = _basis(leaves)

    def push(*tangents: torch.Tensor) -> Any:
        res = jvp_impl(lambda *ls: func(*rebuild(*ls), **kwargs), tuple(leaves), tangents, has_aux, False, {})
        return res[1] if not has_aux else (res[1], res[2])

    pushed = vmap_impl(push, 0, (0, None) if has_aux else 0, randomness, None, tuple(basis), {})
    tangents_out, aux = pushed if has_aux else (pushed, None)
    flat_t, out_spec = pytree.tree_flatten(tangents_out)
    jac_blocks = []
    for t in flat_t:
        # t: (total, *out.shape) -> one block per input leaf, shaped out.shape + in.shape
        moved = t.movedim(0, -1)
        row = []
        start = 0
        for leaf in leaves:
            n = leaf.numel()
            row.append(moved[..., start : start + n].reshape(*moved.shape[:-1], *leaf.shape))
            start += n
        jac_blocks.append(row)
    jac = _structure(jac_blocks, out_spec, in_spec, argnums)
    return (jac, aux) if has_aux else jac


def linearize_impl(func: Callable[..., Any], primals: tuple[Any, ...]) -> tuple[Any, Callable[..., Any]]:
    out = func(*primals)

    @functools.wraps(func)
    def jvp_fn(*tangents: Any) -> Any:
        return jvp_impl(func, primals, tangents, False, False, {})[1]

    return pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, out), jvp_fn
