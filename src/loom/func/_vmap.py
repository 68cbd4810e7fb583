"""vmap_impl: flatten, check, wrap, call, unwrap, unflatten. Pytree handling lives here only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from . import _custom_function
from ._batched import BatchedTensor
from ._calls import describe_call, fn_name
from ._levels import VmapLevel, push_level
from ._random import vmap_function_mode

_custom_function.install()


def _call_formatter(func: Any, in_dims: Any, out_dims: Any, randomness: str, args: tuple[Any, ...]) -> Any:
    options: dict[str, Any] = {}
    if in_dims != 0:
        options["in_dims"] = in_dims
    if out_dims != 0:
        options["out_dims"] = out_dims
    if randomness != "error":
        options["randomness"] = randomness
    return lambda: describe_call("vmap", func, options, args)


def _flat_dims(dims: Any, spec: Any, what: str, call: Callable[[], str]) -> list[Any]:
    """Broadcast the prefix ``dims`` over a pytree with this ``spec``; one int-or-None per leaf."""
    if isinstance(dims, int) or dims is None:
        return [dims] * spec.num_leaves
    flat = pytree._broadcast_to_and_flatten(dims, spec)
    if flat is None:
        raise ValueError(
            f"{call()}: {what}={dims!r} is not compatible with the structure of the "
            f"{'inputs' if what == 'in_dims' else 'outputs'}; {what} must be a prefix of that structure "
            f"(an int or None for all, or a tuple with one entry per {'input' if what == 'in_dims' else 'output'})"
        )
    for d in flat:
        if d is not None and not isinstance(d, int):
            raise ValueError(f"{call()}: every entry of {what} must be an int or None, got {d!r} in {dims!r}")
    return list(flat)


def check_in_dims(in_dims: Any) -> None:
    """Reject in_dims that are neither an int, None nor a tuple, before any call."""
    if not isinstance(in_dims, (int, tuple)) and in_dims is not None:
        raise ValueError(
            f"vmap: in_dims must be an int or a (possibly nested) tuple matching the structure of the "
            f"inputs, got {in_dims!r} of type {type(in_dims).__name__}"
        )


def vmap_impl(
    func: Callable[..., Any],
    in_dims: Any,
    out_dims: Any,
    randomness: str,
    chunk_size: int | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run ``func`` batched over ``args`` according to ``in_dims`` and return outputs laid out by ``out_dims``."""
    formatter = _call_formatter(func, in_dims, out_dims, randomness, args)
    if not args:
        raise ValueError(
            f"{formatter()}: got no inputs. Maybe you forgot to pass them, or {fn_name(func)} takes none: "
            "vmap needs at least one batched Tensor input"
        )
    if isinstance(in_dims, tuple) and len(in_dims) != len(args):
        raise ValueError(
            f"{formatter()}: got {len(args)} inputs but in_dims has {len(in_dims)} entries; in_dims must "
            "be an int, or a tuple with one entry per input"
        )
    flat_args, args_spec = pytree.tree_flatten(args)
    flat_in = _flat_dims(in_dims, args_spec, "in_dims", formatter)
    size = None
    sizes = []
    for x, d in zip(flat_args, flat_in):
        if d is None:
            continue
        if not isinstance(x, torch.Tensor):
            raise ValueError(
                f"{formatter()}: got in_dim={d} for an input of type {type(x).__name__}; vmap can only map "
                "over Tensor inputs: use None as the in_dim of non-Tensor inputs"
            )
        n = max(x.dim(), 0)
        if not -n <= d < n:
            raise ValueError(
                f"{formatter()}: got in_dim={d} for an input that is a Tensor of dimensionality {x.dim()}; "
                f"expected -{n} <= in_dim < {n}"
            )
        sizes.append(int(x.shape[d]))
    if not sizes:
        raise ValueError(
            f"{formatter()}: at least one input must be a Tensor batched over (an in_dim that is not None); "
            f"got in_dims={in_dims!r} for inputs of types {[type(a).__name__ for a in flat_args]}"
        )
    size = sizes[0]
    if any(s != size for s in sizes):
        raise ValueError(
            f"{formatter()}: expected all tensors to have the same size in the mapped dimension, got sizes "
            f"{sizes} for the mapped dimension"
        )
    flat_in = [None if d is None else d % flat_args[i].dim() for i, d in enumerate(flat_in)]
    if chunk_size is not None and chunk_size < size:
        return _chunked(
            func, flat_args, args_spec, flat_in, out_dims, randomness, chunk_size, kwargs, formatter
        )
    return _vmap_once(func, flat_args, args_spec, flat_in, out_dims, randomness, size, kwargs, formatter)


def _vmap_once(
    func: Callable[..., Any],
    flat_args: list[Any],
    args_spec: Any,
    flat_in: list[Any],
    out_dims: Any,
    randomness: str,
    size: int,
    kwargs: dict[str, Any],
    formatter: Any,
) -> Any:
    with push_level(VmapLevel(formatter, size, randomness)) as level, vmap_function_mode(level):
        wrapped = [
            x if d is None else BatchedTensor(_physical(x, d), level.id) for x, d in zip(flat_args, flat_in)
        ]
        out = func(*pytree.tree_unflatten(wrapped, args_spec), **kwargs)
        flat_out, out_spec = pytree.tree_flatten(out)
        flat_od = _flat_dims(out_dims, out_spec, "out_dims", formatter)
        unwrapped = [_unwrap_output(o, d, level, func) for o, d in zip(flat_out, flat_od)]
    return pytree.tree_unflatten(unwrapped, out_spec)


def _physical(x: torch.Tensor, d: int) -> torch.Tensor:
    """The input with its batch dim first and no lazy conj/neg bit (NOTE [no conjugate or negative bits...])."""
    if x.is_conj() or x.is_neg():
        x = x.resolve_conj().resolve_neg()
    return x if d == 0 else x.movedim(d, 0)


def _unwrap_output(o: Any, od: Any, level: VmapLevel, func: Any) -> Any:
    if isinstance(o, BatchedTensor) and o._level == level.id:
        if od is None:
            raise ValueError(
                f"{level.call}: out_dims is None for an output that is batched (it varies across the batch); "
                "None is only allowed for outputs that are the same for every example"
            )
        v = o._value
        return v if od == 0 else v.movedim(0, _check_out_dim(od, v.dim(), level))
    if isinstance(o, torch.Tensor):
        if od is None:
            return o
        od = _check_out_dim(od, o.dim() + 1, level)
        return o.unsqueeze(od).expand(*o.shape[:od], level.batch_size, *o.shape[od:])
    if od is None:
        return o
    raise ValueError(
        f"{level.call}: {fn_name(func)} must only return Tensors where out_dims is not None, got an output of "
        f"type {type(o).__name__}; set its out_dim to None"
    )


def _check_out_dim(od: int, rank: int, level: VmapLevel) -> int:
    if not -rank <= od < rank:
        raise ValueError(
            f"{level.call}: out_dim={od} is out of range for an output with {rank} dims (batch dim included); "
            f"expected -{rank} <= out_dim < {rank}"
        )
    return od % rank


def _chunked(
    func: Callable[..., Any],
    flat_args: list[Any],
    args_spec: Any,
    flat_in: list[Any],
    out_dims: Any,
    randomness: str,
    chunk_size: int,
    kwargs: dict[str, Any],
    formatter: Any,
) -> Any:
    pieces = [None if d is None else torch.split(x, chunk_size, d) for x, d in zip(flat_args, flat_in)]
    n_chunks = len(next(p for p in pieces if p is not None))
    results = []
    for c in range(n_chunks):
        chunk_args = [x if p is None else p[c] for x, p in zip(flat_args, pieces)]
        size = int(next(a.shape[d] for a, d in zip(chunk_args, flat_in) if d is not None))
        results.append(
            _vmap_once(func, chunk_args, args_spec, flat_in, out_dims, randomness, size, kwargs, formatter)
        )
    flat_results = [pytree.tree_flatten(r)[0] for r in results]
    out_spec = pytree.tree_flatten(results[0])[1]
    flat_od = _flat_dims(out_dims, out_spec, "out_dims", formatter)
    merged = []
    for i, od in enumerate(flat_od):
        parts = [fr[i] for fr in flat_results]
        merged.append(parts[0] if od is None else torch.cat(parts, od))
    return pytree.tree_unflatten(merged, out_spec)
