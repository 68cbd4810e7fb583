"""Jacobians three ways: a loop of vector-Jacobian products, ``vmap(vjp)``, and ``jacrev`` (and ``jacfwd``).

The PyTorch 1.11 announcement's example: ``predict(weight, bias, x) = tanh(x @ weight.T + bias)``. The
Jacobian of the output with respect to ``x`` is computed row by row with ``torch.autograd.grad`` (the
plain-PyTorch way), then by vectorizing the same VJP over all unit vectors at once with
``loom.func.vmap``, then with ``loom.func.jacrev`` and ``loom.func.jacfwd``, and finally for a whole
batch of inputs with ``vmap(jacrev(...))``.

Check: every Jacobian equals the loop's (float64, tolerance 1e-10); timings are printed for reference.

Run: ``python examples/jacobians.py [--dim D] [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from loom.func import jacfwd, jacrev, vjp, vmap


def predict(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, weight, bias).tanh()


def jacobian_loop(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The plain-PyTorch way: one backward pass per output element."""
    x = x.clone().requires_grad_()
    out = predict(weight, bias, x)
    rows = [
        torch.autograd.grad(out, x, v, retain_graph=True)[0] for v in torch.eye(out.numel(), dtype=x.dtype)
    ]
    return torch.stack(rows)


def jacobian_vmap_vjp(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    _, vjp_fn = vjp(lambda x: predict(weight, bias, x), x)
    unit_vectors = torch.eye(x.numel(), dtype=x.dtype)
    (jac,) = vmap(vjp_fn)(unit_vectors)
    return jac  # type: ignore[no-any-return]


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    dim, batch, repeats = (8, 4, 2) if args.quick else (args.dim, args.batch, 10)
    torch.manual_seed(0)
    weight = torch.randn(dim, dim, dtype=torch.float64)
    bias = torch.randn(dim, dtype=torch.float64)
    x = torch.randn(dim, dtype=torch.float64)

    expected = jacobian_loop(weight, bias, x)
    candidates: dict[str, Callable[[], torch.Tensor]] = {
        "loop of autograd.grad": lambda: jacobian_loop(weight, bias, x),
        "vmap(vjp)": lambda: jacobian_vmap_vjp(weight, bias, x),
        "jacrev": lambda: jacrev(predict, argnums=2)(weight, bias, x),
        "jacfwd": lambda: jacfwd(predict, argnums=2)(weight, bias, x),
    }
    ok = True
    for name, fn in candidates.items():
        err = (fn() - expected).abs().max().item()
        ok &= err < 1e-10
        print(f"{name:>22}: {median_ms(fn, repeats):8.3f} ms   max |diff| vs loop {err:.1e}")

    # A Jacobian per example of a batch: vmap over jacrev, against the loop run per example.
    xs = torch.randn(batch, dim, dtype=torch.float64)
    batched = vmap(jacrev(predict, argnums=2), in_dims=(None, None, 0))(weight, bias, xs)
    looped = torch.stack([jacobian_loop(weight, bias, xi) for xi in xs])
    err = (batched - looped).abs().max().item()
    ok &= batched.shape == (batch, dim, dim) and err < 1e-10
    print(f"vmap(jacrev) over a batch of {batch}: shape {tuple(batched.shape)}, max |diff| vs loop {err:.1e}")
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
