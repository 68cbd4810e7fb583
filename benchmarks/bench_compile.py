"""loom.func.compile vs torch.func eager vs torch.compile(torch.func ...) on the five transform workloads.

Workloads (as in bench_func.py): the Jacobian of F.linear(x, w, b).tanh() via vmap(vjp_fn) at D=16 and
D=1024, per-sample gradients of the tutorial CNN at batch 64, an ensemble of 64 MLPs (784-512-10, batch
256), the Hessian of a 256-input scalar function. Contenders, in the same process: ``loom`` (compiled Loom,
default backend: replay on CPU, cuda_graph on CUDA), ``torch_func`` (eager), ``torch_compile``
(``torch.compile`` of the same torch.func function, inductor), ``loom_eager`` (for reference). Trace and
compile times (first-call costs) are reported separately and never enter the medians.

Usage: python benchmarks/bench_compile.py [--quick] [--device cuda] [--backend replay|cuda_graph|inductor]
       [--no-torch-compile] [--loom-inductor] [--only NAME] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.func as tf
import torch.nn.functional as F
from torch import nn

import loom.func as lf
from harness import Suite
from models import SimpleCNN

Case = tuple[Callable[[Any], Callable[..., Any]], tuple[Any, ...]]  # (build(lib) -> fn, inputs)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", default=None, help="loom.func.compile backend (default: per device)")
    parser.add_argument("--only", default=None, help="run only benchmarks whose name contains this")
    parser.add_argument("--no-torch-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument(
        "--loom-inductor", action="store_true", help="also time compiled Loom with backend='inductor'"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 on cpu, a shared machine)"
    )
    return parser.parse_args()


def jacobian_case(d: int, device: str) -> Case:
    weight = torch.randn(d, d, device=device)
    bias = torch.randn(d, device=device)

    def build(lib: Any) -> Callable[..., Any]:
        def jacobian(x: torch.Tensor, unit_vectors: torch.Tensor) -> Any:
            _, vjp_fn = lib.vjp(lambda v: F.linear(v, weight, bias).tanh(), x)
            return lib.vmap(vjp_fn)(unit_vectors)

        return jacobian

    return build, (torch.randn(d, device=device), torch.eye(d, device=device))


def per_sample_grads_case(batch: int, device: str) -> Case:
    model = SimpleCNN().to(device)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def build(lib: Any) -> Callable[..., Any]:
        def loss(p: Any, b: Any, sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            pred = lib.functional_call(model, (p, b), (sample.unsqueeze(0),))
            return F.nll_loss(pred, target.unsqueeze(0))

        return lib.vmap(lib.grad(loss), in_dims=(None, None, 0, 0))

    data = torch.randn(batch, 1, 28, 28, device=device)
    targets = torch.randint(10, (batch,), device=device)
    return build, (params, buffers, data, targets)


def ensemble_case(n_models: int, batch: int, device: str) -> Case:
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
        for _ in range(n_models)
    ]
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = lf.stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}

    def build(lib: Any) -> Callable[..., Any]:
        def fmodel(p: Any, b: Any, x: torch.Tensor) -> torch.Tensor:
            return lib.functional_call(base, (p, b), (x,))

        return lib.vmap(fmodel, in_dims=(0, 0, None))

    return build, (params, buffers, torch.randn(batch, 1, 28, 28, device=device))


def hessian_case(n: int, device: str) -> Case:
    a = torch.randn(n, n, device=device) / n**0.5

    def f(v: torch.Tensor) -> torch.Tensor:
        return (a @ v).tanh().pow(2).sum() + v.sin().sum()

    return (lambda lib: lib.hessian(f)), (torch.randn(n, device=device),)


def _first_call(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> tuple[Any, float]:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*inputs)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _check_same(name: str, who: str, ours: Any, theirs: Any, *, own_kernels: bool = False) -> None:
    """Guard: every contender computes the same thing before it is timed.

    ``own_kernels``: the contender picks its own kernels (torch.compile), so on CUDA, where cuDNN may run
    convolutions in TF32 (torch's default), it gets TF32's tolerance (10-bit mantissa) rather than fp32's.
    """
    loose = own_kernels and torch.cuda.is_available() and torch.backends.cudnn.allow_tf32
    rtol, atol = (1e-2, 1e-3) if loose else (1e-3, 1e-4)
    for a, b in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
        if not torch.allclose(a, b, rtol=rtol, atol=atol):
            err = (a - b).abs().max().item()
            raise RuntimeError(
                f"bench_compile: {name}: {who} and torch.func eager disagree (max |diff| {err:.2e})"
            )


def run_case(
    suite: Suite, name: str, case: Case, backend: str | None, with_torch_compile: bool, loom_inductor: bool
) -> None:
    build, inputs = case
    eager_tf = build(tf)
    eager_loom = build(lf)
    compiled = lf.compile(build(lf), backend=backend)
    reference = eager_tf(*inputs)
    ours, loom_first = _first_call(compiled, inputs)
    _check_same(name, "compiled Loom", ours, reference)
    info = compiled.cache_info()
    fns: dict[str, Callable[[], Any]] = {
        "torch_func": lambda: eager_tf(*inputs),
        "loom_eager": lambda: eager_loom(*inputs),
    }
    extra: dict[str, Any] = {
        "loom_backend": compiled.backend,
        "loom_trace_s": info.trace_seconds,
        "loom_compile_s": info.compile_seconds,
        "loom_first_call_s": loom_first,
    }
    if with_torch_compile:
        torch._dynamo.reset()
        tc = torch.compile(eager_tf)
        try:
            theirs, tc_first = _first_call(tc, inputs)
        except Exception as exc:  # a torch.compile failure is a result, not a crash of the suite
            extra["torch_compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        else:
            try:
                _check_same(name, "torch.compile", theirs, reference, own_kernels=True)
            except RuntimeError as exc:  # a wrong baseline is reported, not timed, and not a crash
                extra["torch_compile_error"] = str(exc)
            else:
                fns["torch_compile"] = lambda: tc(*inputs)
                extra["torch_compile_first_call_s"] = tc_first
    if loom_inductor:
        li = lf.compile(build(lf), backend="inductor")
        _check_same(name, "compiled Loom (inductor)", _first_call(li, inputs)[0], reference, own_kernels=True)
        fns["loom_inductor"] = lambda: li(*inputs)
        extra["loom_inductor_compile_s"] = li.cache_info().compile_seconds
    record = suite.compare(name, loom=lambda: compiled(*inputs), **fns)
    record.extra = extra
    if compiled.cache_info().misses != 1:
        raise RuntimeError(f"bench_compile: {name}: compiled Loom re-traced while timed")
    first = f"trace {extra['loom_trace_s']:.2f} s, compile {extra['loom_compile_s']:.2f} s"
    tc_note = (
        f"torch.compile first call {extra['torch_compile_first_call_s']:.2f} s"
        if "torch_compile_first_call_s" in extra
        else extra.get("torch_compile_error", "torch.compile skipped")
    )
    li_note = (
        f"; loom inductor compile {extra['loom_inductor_compile_s']:.2f} s"
        if "loom_inductor_compile_s" in extra
        else ""
    )
    print(f"[{name}] loom backend={extra['loom_backend']}: {first}; {tc_note}{li_note}", flush=True)


def main() -> None:
    args = _args()
    device = args.device
    threads = args.threads or (1 if device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    lf.set_vmap_fallback("error")  # a benchmark that hits the slow path is a bug, not a number
    if device == "cuda":
        # Full float32 convolutions for every contender (cuDNN's default is TF32): torch.compile's kernels
        # then agree with torch.func's to fp32 tolerance, so its CNN time is checked, not waved through.
        torch.backends.cudnn.allow_tf32 = False
    quick = args.quick
    suite = Suite(f"compile[{device}]", warmup=3 if quick else 10, repeats=5 if quick else 30)
    cases: list[tuple[str, Callable[[], Case]]] = [
        ("jacobian D=16", lambda: jacobian_case(16, device)),
        (f"jacobian D={64 if quick else 1024}", lambda: jacobian_case(64 if quick else 1024, device)),
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
        if name.startswith("ensemble"):
            with torch.no_grad():
                run_case(suite, name, make(), args.backend, not args.no_torch_compile, args.loom_inductor)
        else:
            run_case(suite, name, make(), args.backend, not args.no_torch_compile, args.loom_inductor)
        print(suite.table().splitlines()[-1], flush=True)  # each case as it finishes
    suite.finish(args.json)


if __name__ == "__main__":
    main()
