"""loom.func vs torch.func vs a Python loop: Jacobians, per-sample gradients, ensembling, Hessian.

Usage: python benchmarks/bench_func.py [--quick] [--device cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.func as tf
import torch.nn.functional as F
from torch import nn

import loom.func as lf
from harness import Suite
from models import SimpleCNN


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", default=None, help="run only benchmarks whose name contains this")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 on cpu, a shared machine)"
    )
    return parser.parse_args()


def jacobian_case(d: int, device: str) -> dict[str, Callable[[], Any]]:
    """The 1.11 announcement: the Jacobian of F.linear(x, w, b).tanh() via vmap(vjp_fn)(unit_vectors)."""
    weight = torch.randn(d, d, device=device)
    bias = torch.randn(d, device=device)
    x = torch.randn(d, device=device)
    unit_vectors = torch.eye(d, device=device)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias).tanh()

    def with_lib(lib: Any) -> Callable[[], Any]:
        def run() -> Any:
            _, vjp_fn = lib.vjp(predict, x)
            return lib.vmap(vjp_fn)(unit_vectors)

        return run

    def loop() -> Any:
        xr = x.detach().requires_grad_()
        out = predict(xr)
        return torch.stack([torch.autograd.grad(out, xr, v, retain_graph=True)[0] for v in unit_vectors])

    return {"loom": with_lib(lf), "torch_func": with_lib(tf), "python_loop": loop}


def per_sample_grads_case(batch: int, device: str) -> dict[str, Callable[[], Any]]:
    model = SimpleCNN().to(device)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    data = torch.randn(batch, 1, 28, 28, device=device)
    targets = torch.randint(10, (batch,), device=device)

    def with_lib(lib: Any) -> Callable[[], Any]:
        def loss(params: Any, buffers: Any, sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            pred = lib.functional_call(model, (params, buffers), (sample.unsqueeze(0),))
            return F.nll_loss(pred, target.unsqueeze(0))

        fn = lib.vmap(lib.grad(loss), in_dims=(None, None, 0, 0))
        return lambda: fn(params, buffers, data, targets)

    def loop() -> Any:
        grads = []
        for x, y in zip(data, targets):
            out = F.nll_loss(model(x.unsqueeze(0)), y.unsqueeze(0))
            grads.append(torch.autograd.grad(out, list(model.parameters())))
        return [torch.stack(g) for g in zip(*grads)]

    return {"loom": with_lib(lf), "torch_func": with_lib(tf), "python_loop": loop}


def ensemble_case(n_models: int, batch: int, device: str) -> dict[str, Callable[[], Any]]:
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
        for _ in range(n_models)
    ]
    minibatch = torch.randn(batch, 1, 28, 28, device=device)
    base = copy.deepcopy(models[0]).to("meta")

    def with_lib(lib: Any) -> Callable[[], Any]:
        params, buffers = lib.stack_module_state(models)

        def fmodel(p: Any, b: Any, x: torch.Tensor) -> torch.Tensor:
            return lib.functional_call(base, (p, b), (x,))

        fn = lib.vmap(fmodel, in_dims=(0, 0, None))

        def run() -> Any:
            with torch.no_grad():
                return fn(params, buffers, minibatch)

        return run

    def loop() -> Any:
        with torch.no_grad():
            return torch.stack([m(minibatch) for m in models])

    return {"loom": with_lib(lf), "torch_func": with_lib(tf), "python_loop": loop}


def hessian_case(n: int, device: str) -> dict[str, Callable[[], Any]]:
    a = torch.randn(n, n, device=device) / n**0.5
    x = torch.randn(n, device=device)

    def f(v: torch.Tensor) -> torch.Tensor:
        return (a @ v).tanh().pow(2).sum() + v.sin().sum()

    def loop() -> Any:
        v = x.detach().requires_grad_()
        (g,) = torch.autograd.grad(f(v), v, create_graph=True)
        return torch.stack([torch.autograd.grad(g[i], v, retain_graph=True)[0] for i in range(n)])

    return {"loom": lambda: lf.hessian(f)(x), "torch_func": lambda: tf.hessian(f)(x), "python_loop": loop}


def _check_same(name: str, fns: dict[str, Callable[[], Any]]) -> None:
    """Guard: Loom and torch.func compute the same thing before they are timed."""
    ours = torch.utils._pytree.tree_leaves(fns["loom"]())
    theirs = torch.utils._pytree.tree_leaves(fns["torch_func"]())
    for a, b in zip(ours, theirs):
        if not torch.allclose(a, b, rtol=1e-3, atol=1e-4):
            raise RuntimeError(f"bench_func: {name}: Loom and torch.func disagree")


def main() -> None:
    args = _args()
    device = args.device
    threads = args.threads or (1 if device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    lf.set_vmap_fallback("error")  # a benchmark that hits the slow path is a bug, not a number
    quick = args.quick
    suite = Suite(f"func[{device}]", warmup=2 if quick else 5, repeats=3 if quick else 20)
    cases: list[tuple[str, Callable[[], dict[str, Callable[[], Any]]]]] = [
        ("jacobian D=16", lambda: jacobian_case(16, device)),
        ("jacobian D=1024", lambda: jacobian_case(64 if quick else 1024, device)),
        (
            f"per-sample grads CNN batch {8 if quick else 64}",
            lambda: per_sample_grads_case(8 if quick else 64, device),
        ),
        (
            f"ensemble {8 if quick else 64} MLPs 784-512-10, batch 256",
            lambda: ensemble_case(8 if quick else 64, 256, device),
        ),
        (f"hessian {32 if quick else 256}-input scalar", lambda: hessian_case(32 if quick else 256, device)),
    ]
    for name, make in cases:
        if args.only and args.only not in name:
            continue
        fns = make()
        _check_same(name, fns)
        suite.compare(name, isolate=("python_loop",), **fns)
    suite.finish(args.json)


if __name__ == "__main__":
    main()
