"""Hessian-vector products without forming the Hessian: forward-over-reverse (``jvp(grad)``) and
reverse-over-reverse (``vjp(grad)``), plus the full ``hessian`` for comparison.

For a scalar function f, ``H v`` costs about as much as a couple of gradients when computed as
``jvp(grad(f), (x,), (v,))``: the directional derivative of the gradient. The plain-PyTorch way is double
backward (``torch.autograd.grad`` with ``create_graph=True``). The example does both on a small
function and on a model's loss with respect to all its parameters (a dict of tensors).

Check: the HVPs from ``jvp(grad)``, ``vjp(grad)``, ``hessian(f)(x) @ v`` and double backward agree within
1e-10 (float64); a batch of HVPs with ``vmap`` matches them one by one.

Run: ``python examples/hessian_vector_products.py [--dim D] [--quick]``
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from loom.func import functional_call, grad, hessian, jvp, vjp, vmap


def f(x: torch.Tensor) -> torch.Tensor:
    return (x.sin() * x.roll(1)).sum() + (x**2).sum().sqrt()


def hvp_fwd_rev(fn, x, v):  # type: ignore[no-untyped-def]
    return jvp(grad(fn), (x,), (v,))[1]


def hvp_rev_rev(fn, x, v):  # type: ignore[no-untyped-def]
    return vjp(grad(fn), x)[1](v)[0]


def hvp_double_backward(fn, x, v):  # type: ignore[no-untyped-def]
    """The plain-PyTorch way."""
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
    return torch.autograd.grad(g, x, v)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    dim = 16 if args.quick else args.dim
    torch.manual_seed(0)
    x = torch.randn(dim, dtype=torch.float64)
    v = torch.randn(dim, dtype=torch.float64)
    ok = True

    expected = hvp_double_backward(f, x, v)
    results = {
        "jvp(grad(f))": hvp_fwd_rev(f, x, v),
        "vjp(grad(f))": hvp_rev_rev(f, x, v),
        "hessian(f)(x) @ v": hessian(f)(x) @ v,
    }
    for name, value in results.items():
        err = (value - expected).abs().max().item()
        ok &= err < 1e-10
        print(f"{name:>18}: max |diff| vs double backward {err:.1e}")

    vs = torch.randn(4, dim, dtype=torch.float64)
    batched = vmap(lambda v: hvp_fwd_rev(f, x, v))(vs)
    err = max((batched[i] - hvp_double_backward(f, x, vs[i])).abs().max().item() for i in range(4))
    ok &= err < 1e-10
    print(f"vmap over 4 directions: max |diff| vs double backward {err:.1e}")

    # The HVP of a model's loss with respect to its parameters (a dict), as used by Newton-CG methods.
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    data, target = torch.randn(32, 8, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    params = {k: p.detach() for k, p in model.named_parameters()}
    direction = {k: torch.randn_like(p) for k, p in params.items()}

    def loss(params: dict) -> torch.Tensor:
        # Written out rather than F.mse_loss: forward-mode AD through mse_loss's backward fails inside
        # torch 2.13 itself ("ZeroTensors are immutable"), with torch.func as with Loom.
        return ((functional_call(model, params, (data,)) - target) ** 2).mean()

    _, ours = jvp(grad(loss), (params,), (direction,))
    model_params = list(model.parameters())
    grads = torch.autograd.grad(nn.functional.mse_loss(model(data), target), model_params, create_graph=True)
    theirs = torch.autograd.grad(grads, model_params, [direction[k] for k in params])
    err = max((ours[k] - t).abs().max().item() for k, t in zip(params, theirs))
    ok &= err < 1e-10
    print(
        f"HVP of an MLP's loss over its {len(params)} parameter tensors: max |diff| vs double backward {err:.1e}"
    )
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
