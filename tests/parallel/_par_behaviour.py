"""Behaviour cases run inside one 2-rank Gloo job (see test_ddp_behaviour.py).

Each case returns plain data (differences, error messages) for the test to judge; cases that expect an
error catch it themselves. Cases where both ranks fail alike keep the ranks' collectives matched.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from _par_models import (
    D_IN,
    D_OUT,
    MLP,
    B,
    Case,
    CheckpointLast,
    CheckpointTwice,
    Unused,
    batches,
    clone,
    fresh,
    mse,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel as TorchDDP

from loom.parallel import DistributedDataParallel as LoomDDP
from loom.parallel import GradBucket, _static
from loom.parallel.comm_hooks import PowerSGDState, powerSGD_hook


def _error(fn: Callable[[], Any]) -> str | None:
    try:
        fn()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def state_dict_round_trip(rank: int, world: int) -> dict[str, Any]:
    base = fresh(Case(MLP))
    loom = LoomDDP(clone(base))
    anchor = TorchDDP(clone(base))
    loom(torch.randn(B, D_IN)).sum().backward()
    saved = {k: v.clone() for k, v in loom.state_dict().items()}
    other = LoomDDP(MLP())
    other.load_state_dict(saved)
    from_torch = LoomDDP(MLP())
    from_torch.load_state_dict(anchor.state_dict())
    return {
        "keys": list(saved),
        "torch_keys": list(anchor.state_dict()),
        "reloaded_diff": max((other.state_dict()[k] - v).abs().max().item() for k, v in saved.items()),
        "from_torch_diff": max(
            (from_torch.state_dict()[k] - v).abs().max().item() for k, v in anchor.state_dict().items()
        ),
        "has_module": isinstance(loom.module, MLP),
    }


def unused_without_find_unused(rank: int, world: int) -> dict[str, Any]:
    model = LoomDDP(fresh(Case(Unused)))
    x, y = torch.randn(B, D_IN), torch.randn(B, D_OUT)
    return {"error": _error(lambda: mse(model(x, rank), y).backward())}


def _grad_storage(ddp: nn.Module, steps: int) -> dict[str, Any]:
    """Where gradients live after backward, and whether a .grad kept from step 1 survives step 2."""
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    kept: list[torch.Tensor] = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        mse(ddp(torch.randn(B, D_IN)), torch.randn(B, D_OUT)).backward()
        grads = [p.grad for p in ddp.parameters()]
        if step == 0:
            kept = [g for g in grads if g is not None]
            values = [g.clone() for g in kept]
        opt.step()
    return {
        "storages": len({g.untyped_storage().data_ptr() for g in grads if g is not None}),
        "params": len(grads),
        "kept_unchanged": all(torch.equal(g, v) for g, v in zip(kept, values)),
    }


def grad_storage(rank: int, world: int) -> dict[str, Any]:
    """Default mode: each .grad its own tensor, untouched by later steps; view mode: .grad in buckets."""
    base = fresh(Case(MLP))
    out: dict[str, Any] = {}
    for mode, kw in (("default", {}), ("view", {"gradient_as_bucket_view": True})):
        for static in (False, True):
            kwargs = {**kw, "static_graph": static}
            loom = LoomDDP(clone(base), **kwargs)
            key = f"{mode}{'_static' if static else ''}"
            out[key] = _grad_storage(loom, 3)
            out[key]["buckets"] = len(loom.reducer.buckets)
            out[key + "_torch"] = _grad_storage(TorchDDP(clone(base), **kwargs), 3)
    return out


def collectives_per_step(rank: int, world: int) -> dict[str, Any]:
    """All-reduces launched per step by find_unused_parameters, with and without a communication hook."""
    from loom.parallel import _comm, comm_hooks

    launched: list[str] = []
    real = _comm.all_reduce_async

    def counting(tensor: torch.Tensor, group: Any, avg: bool, what: str) -> Any:
        launched.append(what)
        return real(tensor, group, avg, what)

    out: dict[str, Any] = {}
    _comm.all_reduce_async = counting  # type: ignore[assignment]
    try:
        for hook in (None, comm_hooks.allreduce_hook):
            model = LoomDDP(fresh(Case(Unused)), find_unused_parameters=True)
            if hook is not None:
                model.register_comm_hook(None, hook)
            x, y = torch.randn(B, D_IN), torch.randn(B, D_OUT)
            mse(model(x, rank), y).backward()  # first step: connections are set up
            launched.clear()
            mse(model(x, rank), y).backward()
            out["hook" if hook else "plain"] = {
                "launched": list(launched),
                "buckets": len(model.reducer.buckets),
                "grads_none": [n for n, p in model.module.named_parameters() if p.grad is None],
            }
    finally:
        _comm.all_reduce_async = real  # type: ignore[assignment]
    return out


class Switch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(D_IN, D_OUT)
        self.extra = nn.Linear(D_IN, D_OUT)
        self.use_extra = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        return out + self.extra(x) if self.use_extra else out


def _static_switch(first: bool, later: bool) -> dict[str, Any]:
    inner = Switch()
    model = LoomDDP(inner, static_graph=True)
    x = torch.randn(B, D_IN)
    inner.use_extra = first
    model(x).sum().backward()
    inner.use_extra = later
    error = _error(lambda: model(x).sum().backward())
    inner.use_extra = first  # back to the recorded graph: training goes on
    return {"error": error, "after": _error(lambda: model(x).sum().backward())}


def static_graph_change_new_param(rank: int, world: int) -> dict[str, Any]:
    return _static_switch(False, True)


def static_graph_change_lost_param(rank: int, world: int) -> dict[str, Any]:
    return _static_switch(True, False)


def _static_sink(make: Callable[[], nn.Module], steps: int) -> dict[str, Any]:
    """Which forwards put the sink on the output, and how far training then lands from torch's static graph."""
    base = fresh(Case(make))
    loom = LoomDDP(clone(base), static_graph=True)
    anchor = TorchDDP(clone(base), static_graph=True)
    sinks = []
    rank, world = dist.get_rank(), dist.get_world_size()
    optimizers = {model: torch.optim.SGD(model.parameters(), lr=0.1) for model in (loom, anchor)}
    for step in range(steps):
        x, y = (t[rank * B : (rank + 1) * B] for t in batches(step, 0, world))
        for model, opt in optimizers.items():
            opt.zero_grad(set_to_none=True)
            out = model(x)
            if model is loom:
                sinks.append(type(out.grad_fn).__name__.startswith("_Sink"))
            mse(out, y).backward()
            opt.step()
    diff = max((a - b).abs().max().item() for a, b in zip(loom.parameters(), anchor.parameters()))
    return {"sinks": sinks, "vs_torch": diff}


def static_sink_dropped(rank: int, world: int) -> dict[str, Any]:
    return _static_sink(MLP, 4)


def static_sink_dropped_for_inner_checkpoints(rank: int, world: int) -> dict[str, Any]:
    return _static_sink(CheckpointTwice, 4)


def static_sink_kept_for_last_checkpoint(rank: int, world: int) -> dict[str, Any]:
    return _static_sink(CheckpointLast, 4)


def static_sink_kept_without_graph_task_ids(rank: int, world: int) -> dict[str, Any]:
    """A torch without ``_current_graph_task_id``: no way to tell reentrant backward apart, keep the sink."""
    real = _static._graph_task_id
    _static._graph_task_id = None
    try:
        return _static_sink(MLP, 4)
    finally:
        _static._graph_task_id = real


def shape_mismatch(rank: int, world: int) -> dict[str, Any]:
    model = MLP()
    if rank == 1:
        model.fc2 = nn.Linear(16, 8)
    return {"error": _error(lambda: LoomDDP(model))}


def argument_errors(rank: int, world: int) -> dict[str, Any]:
    model = LoomDDP(MLP())
    model.register_comm_hook(None, lambda state, bucket: None)
    return {
        "twice": _error(lambda: model.register_comm_hook(None, lambda state, bucket: None)),
        "not_callable": _error(lambda: LoomDDP(MLP()).register_comm_hook(None, 3)),  # type: ignore[arg-type]
        "bucket_cap": _error(lambda: LoomDDP(MLP(), bucket_cap_mb=0)),
        "mixed_precision": _error(lambda: LoomDDP(MLP(), mixed_precision=object())),
        "no_params": _error(lambda: LoomDDP(nn.ReLU())),
    }


def _join_run(
    make: Callable[[nn.Module], nn.Module], base: nn.Module, rank: int, world: int, **kw: Any
) -> nn.Module:
    model = make(clone(base))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 2 if rank == 0 else 4
    with model.join(**kw):  # type: ignore[operator]
        for step in range(steps):
            x, y = batches(step, 0, world)
            opt.zero_grad()
            mse(model(x[rank * B : (rank + 1) * B]), y[rank * B : (rank + 1) * B]).backward()
            opt.step()
    return model


def _join_compare(rank: int, world: int, loom_kw: dict[str, Any], **kw: Any) -> dict[str, Any]:
    base = fresh(Case(MLP))
    loom = _join_run(lambda m: LoomDDP(m, **loom_kw), base, rank, world, **kw)
    anchor = _join_run(lambda m: TorchDDP(m, **loom_kw), base, rank, world, **kw)
    diff = max((p - q).abs().max().item() for p, q in zip(loom.parameters(), anchor.parameters()))
    moved = max((p - q).abs().max().item() for p, q in zip(loom.parameters(), base.parameters()))
    return {"vs_torch": diff, "moved": moved}


def join_uneven(rank: int, world: int) -> dict[str, Any]:
    return _join_compare(rank, world, {})


def join_uneven_not_initial_world(rank: int, world: int) -> dict[str, Any]:
    return _join_compare(rank, world, {}, divide_by_initial_world_size=False)


def join_uneven_find_unused_grad_view(rank: int, world: int) -> dict[str, Any]:
    return _join_compare(rank, world, {"find_unused_parameters": True, "gradient_as_bucket_view": True})


def join_uneven_static(rank: int, world: int) -> dict[str, Any]:
    return _join_compare(rank, world, {"static_graph": True})


def join_static_rank_without_inputs(rank: int, world: int) -> dict[str, Any]:
    """Rank 0 has no batch at all: it must shadow the others' static-graph record too."""
    base = fresh(Case(MLP))
    model = LoomDDP(clone(base), static_graph=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with model.join():
        for step in range(0 if rank == 0 else 3):
            x, y = batches(step, 0, world)
            opt.zero_grad()
            mse(model(x[rank * B : (rank + 1) * B]), y[rank * B : (rank + 1) * B]).backward()
            opt.step()
    # reference: only rank 1's loss, halved (divided by the initial world size)
    ref = clone(base)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for step in range(3):
        x, y = batches(step, 0, world)
        ref_opt.zero_grad()
        (mse(ref(x[B : 2 * B]), y[B : 2 * B]) / world).backward()
        ref_opt.step()
    return {
        "vs_reference": max(
            (p - q).abs().max().item() for p, q in zip(model.module.parameters(), ref.parameters())
        )
    }


def join_throw(rank: int, world: int) -> dict[str, Any]:
    base = fresh(Case(MLP))
    return {
        "error": _error(
            lambda: _join_run(lambda m: LoomDDP(m), base, rank, world, throw_on_early_termination=True)
        )
    }


def _create_graph(rank: int, world: int, option: bool) -> dict[str, Any]:
    base = fresh(Case(MLP))
    model = LoomDDP(clone(base), sync_create_graph=option)
    x, y = batches(0, 0, world)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mse(model(x[rank * B : (rank + 1) * B]), y[rank * B : (rank + 1) * B]).backward(create_graph=True)
    params = list(model.module.parameters())
    grads = [p.grad for p in params]
    ref = clone(base)
    ref_params = list(ref.parameters())
    loss = sum(mse(ref(x[r * B : (r + 1) * B]), y[r * B : (r + 1) * B]) for r in range(world)) / world
    ref_grads = torch.autograd.grad(loss, ref_params, create_graph=True)
    out: dict[str, Any] = {
        "value_diff": max((g - h).abs().max().item() for g, h in zip(grads, ref_grads)),
        "requires_grad": all(g.requires_grad for g in grads),
        "warned": any("create_graph" in str(w.message) for w in caught),
    }
    if option:
        # gradient of a penalty on the averaged gradient, averaged across ranks, vs the reference
        penalty = sum((g**2).sum() for g in grads)
        second = torch.autograd.grad(penalty, params)
        flat = torch.cat([s.reshape(-1) for s in second])
        dist.all_reduce(flat)
        flat /= world
        ref_penalty = sum((g**2).sum() for g in ref_grads)
        ref_second = torch.cat([s.reshape(-1) for s in torch.autograd.grad(ref_penalty, ref_params)])
        out["second_order_diff"] = (flat - ref_second).abs().max().item()
    return out


def create_graph_synced(rank: int, world: int) -> dict[str, Any]:
    return _create_graph(rank, world, True)


def create_graph_values_only(rank: int, world: int) -> dict[str, Any]:
    return _create_graph(rank, world, False)


def powersgd_error_feedback(rank: int, world: int) -> dict[str, Any]:
    """Low rank: sum of approximations + mean final error == sum of true averages (error feedback)."""
    state = PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=0, min_compression_rate=0)
    g = torch.Generator().manual_seed(7 + rank)
    total_true = torch.zeros(12 * 10 + 5)
    total_approx = torch.zeros_like(total_true)
    worst_single = 0.0
    for _ in range(5):
        grads = [torch.randn(12, 10, generator=g), torch.randn(5, generator=g)]
        buffer = torch.cat([t.reshape(-1) for t in grads])
        views = [buffer[:120].view(12, 10), buffer[120:]]
        true = buffer.clone()
        dist.all_reduce(true)
        true /= world
        total_true += true
        params = [torch.nn.Parameter(torch.zeros(12, 10)), torch.nn.Parameter(torch.zeros(5))]
        result = powerSGD_hook(state, GradBucket(0, buffer, params, views, True)).wait()
        total_approx += result
        worst_single = max(worst_single, (result - true).abs().max().item())
    error = state.error_dict[0].clone()
    dist.all_reduce(error)
    error /= world
    return {
        "invariant_diff": (total_approx + error - total_true).abs().max().item(),
        "approximation_error": worst_single,
        "iterations": state.iter,
    }


CASES = [
    state_dict_round_trip,
    shape_mismatch,
    argument_errors,
    join_uneven,
    join_uneven_not_initial_world,
    join_uneven_find_unused_grad_view,
    join_uneven_static,
    join_static_rank_without_inputs,
    join_throw,
    create_graph_synced,
    create_graph_values_only,
    powersgd_error_feedback,
    unused_without_find_unused,
    static_graph_change_new_param,
    static_graph_change_lost_param,
    static_sink_dropped,
    static_sink_dropped_for_inner_checkpoints,
    static_sink_kept_for_last_checkpoint,
    static_sink_kept_without_graph_task_ids,
    grad_storage,
    collectives_per_step,
]


def run_behaviour(rank: int, world: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in CASES:
        try:
            out[case.__name__] = case(rank, world)
        except Exception:
            out[case.__name__] = {"crash": traceback.format_exc()}
    return out
