"""Public transforms: validate arguments, wrap ``func``, delegate to the ``*_impl`` functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._vmap import check_in_dims, vmap_impl

_RANDOMNESS = ("error", "same", "different")


def vmap(
    func: Callable[..., Any],
    in_dims: Any = 0,
    out_dims: Any = 0,
    randomness: str = "error",
    *,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Vectorize ``func`` over a batch dimension of its inputs, as if it ran once per example.

    Args:
        func: A function of tensors (and pytrees of tensors) returning tensors or pytrees of tensors.
        in_dims: Which dim of each input is the batch dim: an int for all, or a pytree prefix of the
            positional inputs with an int or ``None`` (not batched) per leaf. Negative dims count from the end.
        out_dims: Where the batch dim goes in each output: an int, or a prefix of the outputs' structure;
            ``None`` for outputs that are the same for every example.
        randomness: ``'error'`` (random ops on batched tensors raise), ``'same'`` (one sample shared by the
            batch) or ``'different'`` (independent samples per example).
        chunk_size: If given, run ``func`` on at most this many examples at a time (less memory).

    Returns:
        A function taking the same inputs as ``func``; keyword arguments are passed through unbatched.

    Raises:
        ValueError: for bad ``in_dims``/``out_dims``, no batched input, or batch sizes that differ; the
            message repeats the call.

    Example:
        >>> import torch
        >>> from loom.func import vmap
        >>> vmap(torch.dot)(torch.ones(5, 3), torch.ones(5, 3)).shape
        torch.Size([5])
    """
    check_in_dims(in_dims)
    if randomness not in _RANDOMNESS:
        raise ValueError(f"vmap: randomness must be one of {_RANDOMNESS}, got {randomness!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"vmap: chunk_size must be None or a positive int, got {chunk_size!r}")

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return vmap_impl(func, in_dims, out_dims, randomness, chunk_size, args, kwargs)

    return wrapped
