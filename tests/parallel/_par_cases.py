"""Parity cases run inside one 2-rank Gloo job (see test_ddp_parity.py); each returns its differences."""

from __future__ import annotations

import traceback
from typing import Any

import torch
import torch.distributed as dist
from _par_models import (
    MLP,
    Case,
    ChannelsLastConv,
    CheckpointTwice,
    DataclassOutput,
    TwoHeads,
    Unused,
    WithBatchNorm,
    clone,
    dataclass_loss,
    fresh,
    main_head_loss,
    train_ddp,
    train_reference,
    two_forwards_loss,
    two_forwards_unused_loss,
    unused_loss,
)
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks as torch_default_hooks
from torch.nn.parallel import DistributedDataParallel as TorchDDP

from loom.parallel import DistributedDataParallel as LoomDDP
from loom.parallel import comm_hooks


def _hook(fn: Any, state: Any = None) -> Any:
    return lambda ddp: ddp.register_comm_hook(state, fn)


def _powersgd(rank: int) -> Any:
    state = comm_hooks.PowerSGDState(None, matrix_approximation_rank=64, start_powerSGD_iter=1, random_seed=0)
    return lambda ddp: ddp.register_comm_hook(state, comm_hooks.powerSGD_hook)


CASES: dict[str, Case] = {
    "mlp": Case(MLP),
    "mlp_static": Case(MLP, kwargs={"static_graph": True}),
    "mlp_grad_view": Case(MLP, kwargs={"gradient_as_bucket_view": True}),
    "mlp_grad_view_static": Case(MLP, kwargs={"gradient_as_bucket_view": True, "static_graph": True}),
    "mlp_tiny_buckets": Case(MLP, kwargs={"bucket_cap_mb": 0.0005}),
    "mlp_tiny_buckets_static": Case(MLP, kwargs={"bucket_cap_mb": 0.0005, "static_graph": True}),
    "unused_find": Case(Unused, unused_loss, {"find_unused_parameters": True}),
    "unused_find_grad_view": Case(
        Unused, unused_loss, {"find_unused_parameters": True, "gradient_as_bucket_view": True}
    ),
    "unused_static": Case(Unused, unused_loss, {"static_graph": True}),
    # a hook owns the buckets' contents: the used map has an all-reduce of its own
    "unused_find_hook": Case(
        Unused, unused_loss, {"find_unused_parameters": True}, hook=_hook(comm_hooks.allreduce_hook)
    ),
    "checkpoint_twice_static": Case(CheckpointTwice, kwargs={"static_graph": True}),
    "checkpoint_twice_static_grad_view": Case(
        CheckpointTwice,
        kwargs={"static_graph": True, "gradient_as_bucket_view": True, "bucket_cap_mb": 0.001},
    ),
    "two_forwards_static": Case(MLP, two_forwards_loss, {"static_graph": True}, torch_ok=False),
    "two_forwards_default": Case(MLP, two_forwards_loss),
    "two_forwards_find_unused": Case(Unused, two_forwards_unused_loss, {"find_unused_parameters": True}),
    "conv_channels_last": Case(ChannelsLastConv),
    "dataclass_output_find_unused": Case(DataclassOutput, dataclass_loss, {"find_unused_parameters": True}),
    "conv_channels_last_grad_view_static": Case(
        ChannelsLastConv, kwargs={"gradient_as_bucket_view": True, "static_graph": True}
    ),
    "conv_channels_last_powersgd": Case(
        ChannelsLastConv, kwargs={"gradient_as_bucket_view": True}, hook=_powersgd(0), torch_ok=False
    ),
    "checkpoint_twice_static_powersgd": Case(
        CheckpointTwice,
        kwargs={"static_graph": True, "gradient_as_bucket_view": True},
        hook=_powersgd(0),
        torch_ok=False,
    ),
    "ignored_output_static": Case(TwoHeads, main_head_loss, {"static_graph": True}, torch_ok=False),
    "ignored_output_find_unused": Case(TwoHeads, main_head_loss, {"find_unused_parameters": True}),
    "no_sync": Case(MLP, micro=3),
    "no_sync_grad_view": Case(MLP, micro=2, kwargs={"gradient_as_bucket_view": True}),
    "no_sync_find_unused": Case(Unused, unused_loss, {"find_unused_parameters": True}, micro=2),
    "no_sync_static_from_step0": Case(MLP, kwargs={"static_graph": True}, micro=2, torch_ok=False),
    "batchnorm_buffers": Case(WithBatchNorm),
    "hook_allreduce": Case(MLP, hook=_hook(comm_hooks.allreduce_hook)),
    "hook_torch_allreduce_on_loom": Case(
        MLP, hook=_hook(torch_default_hooks.allreduce_hook, dist.group.WORLD), torch_ok=True
    ),
    "hook_fp16": Case(MLP, hook=_hook(comm_hooks.fp16_compress_hook)),
    # torch's bf16 hook needs NCCL: compared with the reference only
    "hook_bf16": Case(MLP, hook=_hook(comm_hooks.bf16_compress_hook), torch_ok=False),
    "hook_powersgd_full_rank": Case(MLP, hook=_powersgd(0)),
}

TORCH_HOOKS = {
    "hook_fp16": torch_default_hooks.fp16_compress_hook,
    "unused_find_hook": torch_default_hooks.allreduce_hook,
}


def _run_case(name: str, case: Case, rank: int, world: int) -> dict[str, Any]:
    base = fresh(case)
    loom = LoomDDP(clone(base), **case.kwargs)
    if case.hook is not None:
        case.hook(loom)
    train_ddp(loom, case, rank, world)
    result: dict[str, Any] = {}
    if case.torch_ok:
        anchor = TorchDDP(clone(base), **case.kwargs)
        if name in TORCH_HOOKS:
            anchor.register_comm_hook(None, TORCH_HOOKS[name])
        train_ddp(anchor, case, rank, world)
        result["vs_torch"] = _diff(loom.module, anchor.module, buffers=True)
    reference = clone(base)
    train_reference(reference, case, world)
    result["vs_reference"] = _diff(loom.module, reference, buffers=False)
    result["grads_none"] = _none_grads(loom.module) == _none_grads(reference)
    return result


def _diff(a: torch.nn.Module, b: torch.nn.Module, buffers: bool) -> float:
    sa, sb = (
        (a.state_dict(), b.state_dict())
        if buffers
        else (dict(a.named_parameters()), dict(b.named_parameters()))
    )
    assert list(sa) == list(sb)
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)


def _none_grads(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is None]


def run_parity(rank: int, world: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, case in CASES.items():
        try:
            out[name] = _run_case(name, case, rank, world)
        except Exception:
            out[name] = {"error": traceback.format_exc()}
    return out
