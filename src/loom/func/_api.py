"""Public transforms: validate arguments, wrap ``func``, delegate to the ``*_impl`` functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._autodiff import grad_and_value_impl, jvp_impl, vjp_impl
from ._jacobian import jacfwd_impl, jacrev_impl, linearize_impl
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
        randomness: ``'error'`` (any random call inside ``func`` raises, as in torch.func), ``'same'`` (one
            sample shared by the batch) or ``'different'`` (independent samples per example).
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


def grad_and_value(func: Callable[..., Any], argnums: Any = 0, has_aux: bool = False) -> Callable[..., Any]:
    """Like :func:`grad`, but the returned function gives ``(gradients, value)``.

    Args:
        func: A function returning a scalar tensor (or ``(scalar, aux)`` with ``has_aux=True``).
        argnums: Which positional input(s) to differentiate: an int or a tuple of ints.
        has_aux: ``func`` returns ``(output, aux)``; aux is returned alongside and not differentiated.

    Returns:
        A function returning ``(grads, value)``, or ``(grads, (value, aux))`` with ``has_aux``.

    Example:
        >>> import torch
        >>> from loom.func import grad_and_value
        >>> g, v = grad_and_value(lambda x: (x**2).sum())(torch.tensor([1.0, 2.0]))
        >>> g, v
        (tensor([2., 4.]), tensor(5.))
    """

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return grad_and_value_impl(func, argnums, has_aux, args, kwargs, "grad_and_value")

    return wrapped


def grad(func: Callable[..., Any], argnums: Any = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a scalar function with respect to its ``argnums`` input(s).

    Composes with every other transform (``vmap(grad(f))``, ``grad(grad(f))``...). An outer
    ``torch.no_grad()`` does not stop it; a ``torch.no_grad()`` inside ``func`` is respected.

    Args:
        func: A function returning a scalar tensor (or ``(scalar, aux)`` with ``has_aux=True``).
        argnums: Which positional input(s) to differentiate: an int or a tuple of ints.
        has_aux: ``func`` returns ``(output, aux)``; the gradient function then returns ``(grads, aux)``.

    Returns:
        A function with ``func``'s inputs returning the gradients, shaped like ``args[argnums]``.

    Raises:
        RuntimeError: if ``func`` does not return a scalar tensor, or ``argnums`` is out of range.

    Example:
        >>> import torch
        >>> from loom.func import grad
        >>> grad(torch.sin)(torch.tensor(0.0))
        tensor(1.)
    """

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        grads, value = grad_and_value_impl(func, argnums, has_aux, args, kwargs, "grad")
        return (grads, value[1]) if has_aux else grads

    return wrapped


def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """Run ``func(*primals)`` and return its output with a function computing vector-Jacobian products.

    Args:
        func: A function of tensors returning a tensor or a pytree of tensors.
        *primals: The inputs at which to differentiate.
        has_aux: ``func`` returns ``(output, aux)``.

    Returns:
        ``(output, vjp_fn)`` or ``(output, vjp_fn, aux)``. ``vjp_fn(cotangents)`` takes cotangents shaped
        like ``output`` and returns a tuple with one gradient per primal; it may be called many times.

    Example:
        >>> import torch
        >>> from loom.func import vjp
        >>> out, vjp_fn = vjp(torch.sin, torch.tensor([0.0, 1.0]))
        >>> vjp_fn(torch.ones(2))[0]
        tensor([1.0000, 0.5403])
    """
    return vjp_impl(func, primals, has_aux, {})


def jvp(
    func: Callable[..., Any],
    primals: Any,
    tangents: Any,
    *,
    strict: bool = False,
    has_aux: bool = False,
) -> Any:
    """Forward-mode derivative: ``func(*primals)`` and its Jacobian applied to ``tangents``.

    Args:
        func: A function of tensors returning a tensor or a pytree of tensors.
        primals: A tuple of inputs.
        tangents: A tuple with one tangent per primal, same shapes.
        strict: Not supported (as in torch.func); must be False.
        has_aux: ``func`` returns ``(output, aux)``.

    Returns:
        ``(output, jvp_out)`` or ``(output, jvp_out, aux)``.

    Example:
        >>> import torch
        >>> from loom.func import jvp
        >>> jvp(torch.sin, (torch.tensor(0.0),), (torch.tensor(2.0),))
        (tensor(0.), tensor(2.))
    """
    return jvp_impl(func, primals, tangents, has_aux, strict, {})


def jacrev(
    func: Callable[..., Any],
    argnums: Any = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    _preallocate_and_copy: bool = False,
) -> Callable[..., Any]:
    """The Jacobian of ``func`` with respect to ``argnums`` by reverse mode (``vmap`` over ``vjp``).

    Args:
        func: A function of tensors returning a tensor or a pytree of tensors.
        argnums: Which positional input(s) to differentiate: an int or a tuple of ints.
        has_aux: ``func`` returns ``(output, aux)``; the Jacobian function returns ``(jacobian, aux)``.
        chunk_size: Compute at most this many rows of the Jacobian at a time.

    Returns:
        A function returning the Jacobian: for each output leaf, ``output.shape + input.shape`` blocks
        (a tuple over inputs when ``argnums`` is a tuple).

    Example:
        >>> import torch
        >>> from loom.func import jacrev
        >>> jacrev(torch.sin)(torch.zeros(2))
        tensor([[1., 0.],
                [0., 1.]])
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"jacrev: chunk_size must be None or a positive int, got {chunk_size!r}")

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return jacrev_impl(func, argnums, has_aux, chunk_size, args, kwargs)

    return wrapped


def jacfwd(
    func: Callable[..., Any], argnums: Any = 0, has_aux: bool = False, *, randomness: str = "error"
) -> Callable[..., Any]:
    """The Jacobian of ``func`` with respect to ``argnums`` by forward mode (``vmap`` over ``jvp``).

    Args:
        func: A function of tensors returning a tensor or a pytree of tensors.
        argnums: Which positional input(s) to differentiate: an int or a tuple of ints.
        has_aux: ``func`` returns ``(output, aux)``.
        randomness: vmap's randomness mode for the batched jvp (``'error'``, ``'same'``, ``'different'``).

    Returns:
        A function returning the Jacobian, laid out as :func:`jacrev`'s.

    Example:
        >>> import torch
        >>> from loom.func import jacfwd
        >>> jacfwd(lambda x: x**2)(torch.tensor([1.0, 2.0]))
        tensor([[2., 0.],
                [0., 4.]])
    """
    if randomness not in _RANDOMNESS:
        raise ValueError(f"jacfwd: randomness must be one of {_RANDOMNESS}, got {randomness!r}")

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return jacfwd_impl(func, argnums, has_aux, randomness, args, kwargs)

    return wrapped


def hessian(func: Callable[..., Any], argnums: Any = 0) -> Callable[..., Any]:
    """The Hessian of ``func``: the Jacobian of its Jacobian with respect to ``argnums``.

    torch.func computes ``jacfwd(jacrev(func))``; Loom computes ``jacrev(jacrev(func))``, which is equal
    (second derivatives commute) and keeps forward mode, whose per-op checks on batched tangents are slow
    for a Python tensor subclass, out of the way.

    Args:
        func: A function returning a scalar tensor.
        argnums: Which positional input(s) to differentiate.

    Returns:
        A function returning the Hessian, shaped ``input.shape + input.shape``.

    Example:
        >>> import torch
        >>> from loom.func import hessian
        >>> hessian(lambda x: (x**3).sum())(torch.tensor([1.0, 2.0]))
        tensor([[ 6.,  0.],
                [ 0., 12.]])
    """
    return jacrev(jacrev(func, argnums), argnums)


def linearize(func: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """``func(*primals)`` and a function computing its jvp at ``primals`` for any tangents.

    Args:
        func: A function of tensors returning a tensor or a pytree of tensors.
        *primals: The point at which to linearize.

    Returns:
        ``(output, jvp_fn)``; ``jvp_fn(*tangents)`` returns the Jacobian of ``func`` applied to ``tangents``.

    Example:
        >>> import torch
        >>> from loom.func import linearize
        >>> out, jvp_fn = linearize(torch.sin, torch.tensor([0.0]))
        >>> jvp_fn(torch.tensor([3.0]))
        tensor([3.])
    """
    return linearize_impl(func, primals)
