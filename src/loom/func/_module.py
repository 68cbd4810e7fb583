"""nn.Module helpers: functional_call, stack_module_state, replace_all_batch_norm_modules_."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def _merge(dicts: Any) -> dict[str, Any]:
    if isinstance(dicts, Mapping):
        return dict(dicts)
    if isinstance(dicts, Sequence) and not isinstance(dicts, (str, bytes)):
        merged: dict[str, Any] = {}
        for d in dicts:
            if not isinstance(d, Mapping):
                raise TypeError(
                    f"functional_call: expected dicts of tensors, got an element of type {type(d).__name__}"
                )
            for k, v in d.items():
                if k in merged:
                    raise ValueError(f"functional_call: {k!r} appeared in multiple dictionaries")
                merged[k] = v
        return merged
    raise TypeError(
        f"functional_call: expected a dict or a sequence of dicts of tensors, got {type(dicts).__name__}"
    )


def _tied_names(module: nn.Module) -> dict[str, list[str]]:
    """Each tensor name mapped to all names that share the same tensor (tied weights)."""
    by_id: dict[int, list[str]] = {}
    for name, t in [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]:
        by_id.setdefault(id(t), []).append(name)
    return {name: names for names in by_id.values() for name in names}


def _resolve(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, attr = name.split(".")
    owner = module
    for p in path:
        owner = getattr(owner, p)
    return owner, attr


@contextmanager
def _swapped(module: nn.Module, values: dict[str, Any]) -> Iterator[None]:
    saved: list[tuple[nn.Module, str, str, Any]] = []
    try:
        for name, value in values.items():
            owner, attr = _resolve(module, name)
            if attr in owner._parameters:
                saved.append((owner, attr, "_parameters", owner._parameters[attr]))
                owner._parameters[attr] = value
            elif attr in owner._buffers:
                saved.append((owner, attr, "_buffers", owner._buffers[attr]))
                owner._buffers[attr] = value
            else:
                saved.append((owner, attr, "attr", getattr(owner, attr, None)))
                object.__setattr__(owner, attr, value)
        yield
    finally:
        for owner, attr, where, old in reversed(saved):
            if where == "attr":
                object.__setattr__(owner, attr, old)
            else:
                getattr(owner, where)[attr] = old


def functional_call(
    module: nn.Module,
    parameter_and_buffer_dicts: Any,
    args: Any = None,
    kwargs: dict[str, Any] | None = None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
) -> Any:
    """Call ``module`` with some of its parameters and buffers replaced by the given tensors.

    Args:
        module: The module to call; it is restored afterwards, even on error.
        parameter_and_buffer_dicts: A dict from dotted names (``"0.weight"``) to tensors, or a sequence of
            such dicts (a name may appear in only one).
        args: Positional arguments for ``module``: a tuple, or a single argument.
        kwargs: Keyword arguments for ``module``.
        tie_weights: If a tensor is shared under several names (tied weights), replacing one name replaces
            all of them.
        strict: Every parameter and buffer must be given, and no unknown names.

    Returns:
        What ``module(*args, **kwargs)`` returns.

    Raises:
        ValueError: for names given twice, tied names given different values, or (strict) missing or
            unexpected names.

    Example:
        >>> import torch
        >>> from loom.func import functional_call
        >>> lin = torch.nn.Linear(2, 1)
        >>> params = {"weight": torch.ones(1, 2), "bias": torch.zeros(1)}
        >>> functional_call(lin, params, (torch.tensor([1.0, 2.0]),))
        tensor([3.])
    """
    values = _merge(parameter_and_buffer_dicts)
    tied = _tied_names(module)
    if strict:
        known = set(tied)
        missing = sorted(known - set(values))
        unexpected = sorted(set(values) - known)
        if missing or unexpected:
            raise ValueError(
                f"functional_call({type(module).__name__}, strict=True): missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
    if tie_weights:
        expanded = dict(values)
        for name, value in values.items():
            for other in tied.get(name, [name]):
                if other in values and values[other] is not value:
                    raise ValueError(
                        f"functional_call({type(module).__name__}): {name!r} and {other!r} are tied weights but "
                        "were given different values; pass one of them, or tie_weights=False"
                    )
                expanded[other] = value
        values = expanded
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    with _swapped(module, values):
        return module(*args, **(kwargs or {}))


def stack_module_state(models: Sequence[nn.Module]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stack the parameters and buffers of same-shaped models along a new leading dim (for ensembling).

    Args:
        models: Modules of one architecture (same names and shapes).

    Returns:
        ``(params, buffers)``: dicts from names to stacked tensors. Stacked parameters are new leaves that
        require grad if the originals do.

    Raises:
        RuntimeError: for an empty list, or models whose parameters differ in names or in requires_grad.

    Example:
        >>> import torch
        >>> from loom.func import stack_module_state
        >>> params, buffers = stack_module_state([torch.nn.Linear(3, 2) for _ in range(4)])
        >>> params["weight"].shape
        torch.Size([4, 2, 3])
    """
    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: expected at least one model, got an empty list")
    names = [n for n, _ in models[0].named_parameters()]
    for i, m in enumerate(models[1:], 1):
        if [n for n, _ in m.named_parameters()] != names:
            raise RuntimeError(f"stack_module_state: model {i} has different parameters than model 0")

    def stack(tensors: list[torch.Tensor], name: str) -> torch.Tensor:
        flags = {t.requires_grad for t in tensors}
        if len(flags) > 1:
            raise RuntimeError(
                f"stack_module_state: {name!r} requires grad in some models and not in others; all must agree"
            )
        out = torch.stack([t.detach() for t in tensors])
        return out.requires_grad_() if flags.pop() else out

    params = {n: stack([dict(m.named_parameters())[n] for m in models], n) for n in names}
    buffer_names = [n for n, _ in models[0].named_buffers()]
    buffers = {n: stack([dict(m.named_buffers())[n] for m in models], n) for n in buffer_names}
    return params, buffers


def replace_all_batch_norm_modules_(root: nn.Module) -> nn.Module:
    """Make every BatchNorm in ``root`` stop tracking running stats, in place, so that it works under vmap.

    Args:
        root: The module to patch (and its submodules).

    Returns:
        ``root`` itself.

    Example:
        >>> import torch
        >>> from loom.func import replace_all_batch_norm_modules_
        >>> net = replace_all_batch_norm_modules_(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
        >>> net[0].running_mean is None
        True
    """
    for m in root.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
            m.track_running_stats = False
    return root
