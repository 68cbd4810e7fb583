"""grad, vjp and jvp on torch's autograd, one level per transform.

NOTE [autodiff levels without wrappers]
Each grad/vjp level differentiates with respect to fresh aliases of its inputs (``x.view_as(x)``, made to
require grad), so ``torch.autograd.grad`` at that level only follows paths that start at its own aliases:
tensors captured from outer levels are constants to it (no perturbation confusion), and the graph that
links an alias to the outer input is still there for outer levels (``create_graph=True`` whenever an outer
autodiff level is live). Levels separated by a vmap are kept apart by the BatchedTensor wrapper: autograd
records the wrapper for levels inside the vmap and the physical tensors for levels outside it (see NOTE
[re-entering autograd]). Forward mode uses torch's single forward-AD level; a jvp nested in another
jvp computes its tangents with reverse mode twice (the "double vjp"), which composes with anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.autograd.forward_ad as fwad
from torch.utils import _pytree as pytree

from ._calls import LazyCall, fn_name
from ._levels import (
    ALIAS_LEVEL_ATTR,
    LIVE_VMAP,
    GradLevel,
    JvpLevel,
    autodiff_level_live,
    forward_ad_level_live,
    push_level,
)


def make_alias(p: torch.Tensor, level_id: int) -> torch.Tensor:
    """A tensor equal to ``p`` that this level differentiates with respect to (see NOTE above).

    An alias that is a fresh leaf requires grad for this level alone; it is tagged with the level's id so
    that vmap levels entered before it can tell (see NOTE [physical ops of inner levels] in _batched.py).
    """
    q = p.view_as(p)
    if not q.requires_grad:
        q.requires_grad_()
        if LIVE_VMAP:
            setattr(q, ALIAS_LEVEL_ATTR, level_id)
    return q


def _wants_graph(tensors: list[Any]) -> bool:
    """Whether results must stay differentiable: an outer autodiff level, or base autograd on an input."""
    if autodiff_level_live():
        return True
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _zeros_for_none(grads: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def _detach_tree(tree: Any) -> Any:
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


def _split_aux(out: Any, has_aux: bool, call: Any) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(
            f"{call}: with has_aux=True the function must return a (output, aux) tuple, got {type(out).__name__}"
        )
    return out[0], out[1]


def check_argnums(argnums: Any, n_args: int, call: Any) -> tuple[int, ...]:
    """argnums as a tuple of non-negative ints, checked against the number of positional inputs."""
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    if not nums:
        raise RuntimeError(f"{call}: argnums must be non-empty")
    out = []
    for a in nums:
        if not isinstance(a, int) or isinstance(a, bool):
            raise RuntimeError(f"{call}: argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -n_args <= a < n_args:
            raise RuntimeError(f"{call}: got argnums={argnums!r}, but only {n_args} positional inputs")
        out.append(a % n_args)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{call}: argnums must be unique, got {argnums!r}")
    return tuple(out)


def grad_and_value_impl(
    func: Callable[..., Any],
    argnums: Any,
    has_aux: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    transform: str,
) -> tuple[Any, Any]:
    """(grads, value) or (grads, (value, aux)), grads shaped like ``args[argnums]``."""
    options: dict[str, Any] = {}
    if argnums != 0:
        options["argnums"] = argnums
    if has_aux:
        options["has_aux"] = has_aux
    call = LazyCall(transform, func, options, args)
    nums = check_argnums(argnums, len(args), call)
    create_graph = _wants_graph(pytree.tree_leaves(args))
    with push_level(GradLevel(call)) as level, torch.enable_grad():
        new_args = list(args)
        diff_leaves: list[torch.Tensor] = []
        diff_trees = []
        for i in nums:
            leaves, spec = pytree.tree_flatten(args[i])
            for leaf in leaves:
                if not isinstance(leaf, torch.Tensor):
                    raise RuntimeError(f"{call}: expected argument {i} to contain only Tensors, got {leaf!r}")
            aliases = [make_alias(t, level.id) for t in leaves]
            diff_leaves += aliases
            diff_trees.append((len(aliases), spec))
            new_args[i] = pytree.tree_unflatten(aliases, spec)
        out, aux = _split_aux(func(*new_args, **kwargs), has_aux, call)
        if not isinstance(out, torch.Tensor):
            raise RuntimeError(f"{call}: {fn_name(func)} must return a Tensor, got {type(out).__name__}")
        if out.dim() != 0:
            raise RuntimeError(
                f"{call}: expected {fn_name(func)} to return a scalar Tensor, got a tensor with {out.dim()} dims. "
                "Maybe you wanted the vjp or jacrev APIs?"
            )
        raw: Any = (None,) * len(diff_leaves)
        if out.requires_grad:
            raw = torch.autograd.grad(out, diff_leaves, create_graph=create_graph, allow_unused=True)
        grads = _zeros_for_none(raw, diff_leaves)
    structured = []
    start = 0
    for n, spec in diff_trees:
        structured.append(pytree.tree_unflatten(grads[start : start + n], spec))
        start += n
    result = structured[0] if isinstance(argnums, int) else tuple(structured)
    if not create_graph:
        out, aux = out.detach(), _detach_tree(aux)
    return result, ((out, aux) if has_aux else out)


def vjp_impl(
    func: Callable[..., Any], primals: tuple[Any, ...], has_aux: bool, kwargs: dict[str, Any]
) -> Any:
    """(output, vjp_fn) or (output, vjp_fn, aux); ``vjp_fn`` may be called many times."""
    call = LazyCall("vjp", func, {"has_aux": has_aux} if has_aux else {}, primals)
    flat_primals, primals_spec = pytree.tree_flatten(primals)
    for p in flat_primals:
        if not isinstance(p, torch.Tensor):
            raise RuntimeError(f"{call}: expected primals to be Tensors (or pytrees of them), got {p!r}")
    fwd_graph = _wants_graph(flat_primals)
    with push_level(GradLevel(call)) as level, torch.enable_grad():
        aliases = [make_alias(p, level.id) for p in flat_primals]
        out, aux = _split_aux(func(*pytree.tree_unflatten(aliases, primals_spec), **kwargs), has_aux, call)
    flat_out, out_spec = pytree.tree_flatten(out)
    for o in flat_out:
        if not isinstance(o, torch.Tensor):
            raise RuntimeError(f"{call}: expected {fn_name(func)} to return Tensors, got {type(o).__name__}")

    def vjp_fn(cotangents: Any, *rest: Any) -> tuple[Any, ...]:
        if rest:
            raise TypeError(
                f"{call} vjp_fn: expected one cotangent argument shaped like the output, got {1 + len(rest)}"
            )
        flat_ct, ct_spec = pytree.tree_flatten(cotangents)
        if ct_spec != out_spec:
            raise RuntimeError(
                f"{call} vjp_fn: expected cotangents with the same pytree structure as the outputs "
                f"({out_spec}), got {ct_spec}"
            )
        for o, c in zip(flat_out, flat_ct):
            if not isinstance(c, torch.Tensor) or c.shape != o.shape:
                got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
                raise RuntimeError(
                    f"{call} vjp_fn: expected a cotangent of shape {tuple(o.shape)}, got {got}"
                )
        pairs = [(o, c) for o, c in zip(flat_out, flat_ct) if o.requires_grad]
        create_graph = fwd_graph or _wants_graph(flat_ct)
        grads: Any = (None,) * len(aliases)
        if pairs:
            with torch.enable_grad():
                grads = torch.autograd.grad(
                    [o for o, _ in pairs],
                    aliases,
                    [c for _, c in pairs],
                    retain_graph=True,
                    create_graph=create_graph,
                    allow_unused=True,
                )
        return tuple(pytree.tree_unflatten(_zeros_for_none(grads, aliases), primals_spec))

    result = out if fwd_graph else _detach_tree(out)
    if has_aux:
        return result, vjp_fn, (aux if fwd_graph else _detach_tree(aux))
    return result, vjp_fn


def _load_forward_ad_decompositions() -> None:
    # torch loads (and TorchScripts) its forward-AD decompositions on the first make_dual, with a
    # DeprecationWarning about torch.jit that is not the user's business.
    if not _loaded[0]:
        _loaded[0] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loader = getattr(fwad, "_maybe_load_decompositions", None)
            if loader is not None:
                loader()


_loaded = [False]


def _check_jvp_inputs(primals: Any, tangents: Any, call: Any) -> tuple[list[Any], list[Any], Any]:
    if not isinstance(primals, tuple):
        raise RuntimeError(f"{call}: expected primals to be a tuple, got {type(primals).__name__}")
    if not isinstance(tangents, tuple):
        raise RuntimeError(f"{call}: expected tangents to be a tuple, got {type(tangents).__name__}")
    flat_p, p_spec = pytree.tree_flatten(primals)
    flat_t, t_spec = pytree.tree_flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(
            f"{call}: expected primals and tangents to have the same structure, got {p_spec} and {t_spec}"
        )
    for p, t in zip(flat_p, flat_t):
        if not isinstance(p, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise RuntimeError(f"{call}: expected primals and tangents to contain only Tensors")
        if p.shape != t.shape:
            raise RuntimeError(
                f"{call}: expected each tangent to have the shape of its primal, got {tuple(t.shape)} for a "
                f"primal of shape {tuple(p.shape)}"
            )
    return flat_p, flat_t, p_spec


def jvp_impl(
    func: Callable[..., Any],
    primals: Any,
    tangents: Any,
    has_aux: bool,
    strict: bool,
    kwargs: dict[str, Any],
) -> Any:
    """(output, jvp_out) or (output, jvp_out, aux)."""
    options = {"has_aux": has_aux} if has_aux else {}
    call = LazyCall("jvp", func, options, (primals, tangents))
    flat_p, flat_t, p_spec = _check_jvp_inputs(primals, tangents, call)
    if strict:
        raise RuntimeError(f"{call}: strict=True is not supported (torch.func does not support it either)")
    if forward_ad_level_live():
        return _jvp_double_vjp(func, flat_p, flat_t, p_spec, has_aux, kwargs, call)
    keep_graph = _wants_graph([*flat_p, *flat_t])
    _load_forward_ad_decompositions()
    with push_level(JvpLevel(call, uses_forward_ad=True)), fwad.dual_level():
        duals = [fwad.make_dual(p, t) for p, t in zip(flat_p, flat_t)]  # type: ignore[no-untyped-call]
        out, aux = _split_aux(func(*pytree.tree_unflatten(duals, p_spec), **kwargs), has_aux, call)
        flat_out, out_spec = pytree.tree_flatten(out)
        primals_out = []
        tangents_out = []
        for o in flat_out:
            if not isinstance(o, torch.Tensor):
                raise RuntimeError(
                    f"{call}: expected {fn_name(func)} to return Tensors, got {type(o).__name__}"
                )
            primal, tangent = fwad.unpack_dual(o)  # type: ignore[no-untyped-call]
            primals_out.append(primal)
            tangents_out.append(torch.zeros_like(primal) if tangent is None else tangent)
        aux = pytree.tree_map(_primal_of, aux)
    results = (pytree.tree_unflatten(primals_out, out_spec), pytree.tree_unflatten(tangents_out, out_spec))
    if not keep_graph:
        results = _detach_tree(results)
        aux = _detach_tree(aux)
    return (*results, aux) if has_aux else results


def _primal_of(t: Any) -> Any:
    return fwad.unpack_dual(t).primal if isinstance(t, torch.Tensor) else t  # type: ignore[no-untyped-call]


def _jvp_double_vjp(
    func: Callable[..., Any],
    flat_p: list[Any],
    flat_t: list[Any],
    p_spec: Any,
    has_aux: bool,
    kwargs: dict[str, Any],
    call: Any,
) -> Any:
    """jvp inside another jvp: J t = d/du <u, J t> computed as the vjp of the vjp (reverse mode only)."""
    with push_level(JvpLevel(call, uses_forward_ad=False)) as level, torch.enable_grad():
        aliases = [make_alias(p, level.id) for p in flat_p]
        out, aux = _split_aux(func(*pytree.tree_unflatten(aliases, p_spec), **kwargs), has_aux, call)
        flat_out, out_spec = pytree.tree_flatten(out)
        tangents_out: list[Any] = [None] * len(flat_out)
        live = [i for i, o in enumerate(flat_out) if isinstance(o, torch.Tensor) and o.requires_grad]
        if live:
            dummies = [torch.zeros_like(flat_out[i]).requires_grad_() for i in live]
            vjps = torch.autograd.grad(
                [flat_out[i] for i in live], aliases, dummies, create_graph=True, allow_unused=True
            )
            used = [(g, t) for g, t in zip(vjps, flat_t) if g is not None]
            if used:
                jt = torch.autograd.grad(
                    [g for g, _ in used], dummies, [t for _, t in used], create_graph=True, allow_unused=True
                )
                for i, g in zip(live, jt):
                    tangents_out[i] = g
        tangents_out = [torch.zeros_like(o) if t is None else t for o, t in zip(flat_out, tangents_out)]
    results = (pytree.tree_unflatten(flat_out, out_spec), pytree.tree_unflatten(tangents_out, out_spec))
    return (*results, aux) if has_aux else results
