"""DistributedDataParallel: the module wrapper (construction checks, forward, no_sync, hooks, join)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from loom.parallel import _comm
from loom.parallel._bucketing import DEFAULT_CAP_MB
from loom.parallel._join import Join
from loom.parallel._reducer import CommHook, Reducer


class _Sink(torch.autograd.Function):
    """Identity on the outputs whose backward runs first: it starts the reducer's backward.

    Its callback is queued on the outermost graph task, so the final wait runs after reentrant
    checkpointing's inner backward passes too.
    """

    @staticmethod
    def forward(ctx: Any, reducer: Reducer, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)  # outputs left out of the loss keep no gradient
        ctx.reducer = reducer
        return tensors

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        ctx.reducer.begin_backward()
        return (None, *grads)


class DistributedDataParallel(nn.Module):
    """Data-parallel training of ``module`` over a ``torch.distributed`` process group.

    Drop-in for ``torch.nn.parallel.DistributedDataParallel``: gradients are averaged across ranks during
    backward, in buckets whose all-reduce overlaps the rest of backward. ``state_dict`` keys carry the
    ``module.`` prefix.

    Args:
        module: the module to replicate; its parameters are broadcast from rank 0.
        device_ids: for a module on one GPU, ``[device]``; inputs are moved there. ``None`` for CPU.
        output_device: accepted for compatibility (outputs stay where the module puts them).
        dim: accepted for compatibility (one device per process: no scatter).
        broadcast_buffers: broadcast buffers from rank 0 at the start of each synchronized forward.
        init_sync: broadcast parameters and buffers from rank 0 at construction.
        process_group: the group to reduce over (default: the world).
        bucket_cap_mb: bucket size in MiB (default 25; the first bucket is about 1 MiB).
        find_unused_parameters: walk the autograd graph from the outputs each iteration; parameters unused on
            every rank keep their gradient, those unused on some ranks get the others' average.
        check_reduction: accepted for compatibility; ignored (unfinished reductions always raise).
        gradient_as_bucket_view: make each ``.grad`` a view of its bucket (no copies, less memory).
        static_graph: the graph is the same every iteration (see NOTE [static graph]); supports reentrant
            checkpointing, unused parameters and outputs left out of the loss.
        sync_create_graph: keep gradients of ``backward(create_graph=True)`` differentiable after averaging.

    Raises:
        RuntimeError: if the default process group is not initialized or no parameter requires grad.
        ValueError: if parameter shapes differ across ranks (naming the first mismatch and the ranks).
        NotImplementedError: for torch options Loom does not support (``mixed_precision``, ...).

    Example:
        >>> import os, torch, torch.distributed as dist
        >>> from loom.parallel import DistributedDataParallel
        >>> _ = os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        >>> _ = os.environ.setdefault("MASTER_PORT", "29533")
        >>> dist.init_process_group("gloo", rank=0, world_size=1)
        >>> model = DistributedDataParallel(torch.nn.Linear(4, 2))
        >>> model(torch.randn(3, 4)).sum().backward()
        >>> sorted(model.state_dict())
        ['module.bias', 'module.weight']
        >>> dist.destroy_process_group()
    """

    def __init__(
        self,
        module: nn.Module,
        device_ids: list[int | torch.device] | None = None,
        output_device: int | torch.device | None = None,
        dim: int = 0,
        broadcast_buffers: bool | None = True,
        init_sync: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
        delay_all_reduce_named_params: Any = None,
        param_to_hook_all_reduce: Any = None,
        mixed_precision: Any = None,
        device_mesh: Any = None,
        *,
        sync_create_graph: bool = False,
    ) -> None:
        super().__init__()
        if not _comm.is_available():
            raise RuntimeError(
                "DistributedDataParallel: the default process group is not initialized; call "
                "torch.distributed.init_process_group first"
            )
        for name, value in (
            ("delay_all_reduce_named_params", delay_all_reduce_named_params),
            ("param_to_hook_all_reduce", param_to_hook_all_reduce),
            ("mixed_precision", mixed_precision),
            ("device_mesh", device_mesh),
        ):
            if value is not None:
                raise NotImplementedError(f"DistributedDataParallel: {name} is not supported, got {value!r}")
        if bucket_cap_mb is not None and not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError(
                "DistributedDataParallel: the module has no parameter that requires grad; nothing to reduce"
            )
        self.module = module
        self.process_group = _comm.resolve(process_group)
        self.device_ids = None if device_ids is None else list(device_ids)
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = True if broadcast_buffers is None else bool(broadcast_buffers)
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        cap = DEFAULT_CAP_MB if bucket_cap_mb is None else float(bucket_cap_mb)
        self.bucket_bytes_cap = int(cap * 1024 * 1024)
        self.world_size = _comm.world_size(self.process_group)
        self._authoritative_rank = 0
        self._join: Join | None = None
        self._hook_registered = False
        device = named[0][1].device
        # object collectives on NCCL use the current CUDA device: make it the parameters' one
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            self._check_shapes(named)
        self._buffer_list = [b for b in module.buffers()]
        if init_sync and self.world_size > 1:
            with torch.no_grad():
                tensors = [p.detach() for _, p in module.named_parameters()] + self._buffer_list
                _comm.broadcast_coalesced(tensors, 0, self.process_group, "broadcast of the initial state")
        self.reducer = Reducer(
            [p for _, p in named],
            [n for n, _ in named],
            self.process_group,
            bucket_cap_mb=cap,
            gradient_as_bucket_view=gradient_as_bucket_view,
            find_unused_parameters=find_unused_parameters,
            static_graph=static_graph,
            sync_create_graph=sync_create_graph,
        )

    def _check_shapes(self, named: list[tuple[str, nn.Parameter]]) -> None:
        mine = [(n, tuple(p.shape), str(p.dtype)) for n, p in named]
        every = _comm.all_gather_object(mine, self.process_group, "parameter shape check")
        reference = every[0]
        for rank, theirs in enumerate(every[1:], start=1):
            for k in range(max(len(reference), len(theirs))):
                a = reference[k] if k < len(reference) else None
                b = theirs[k] if k < len(theirs) else None
                if a != b:
                    name = (a or b)[0]  # type: ignore[index]
                    raise ValueError(
                        f"DistributedDataParallel: parameter {k} ({name!r}) differs across ranks: rank 0 has "
                        f"{_describe(a)} but rank {rank} has {_describe(b)}"
                    )

    # ---- forward ------------------------------------------------------------------------------------

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        grad_sync = torch.is_grad_enabled() and self.require_backward_grad_sync
        if self._join is not None:
            self._join.notify(grad_sync)
        if self.broadcast_buffers and self.require_forward_param_sync and self._buffer_list:
            self._sync_buffers()
        if self.device_ids:
            inputs, kwargs = _to_device((inputs, kwargs), torch.device(_device_str(self.device_ids[0])))
        output = self.module(*inputs, **kwargs)
        if not grad_sync:
            self.require_forward_param_sync = False
            return output
        self.require_forward_param_sync = True
        reducer = self.reducer
        if not reducer.needs_sink:
            reducer.prepare_for_backward([])
            return output
        if isinstance(output, torch.Tensor):
            reducer.prepare_for_backward([output])
            if not output.requires_grad:
                return output
            return _Sink.apply(reducer, output)[0]  # type: ignore[no-untyped-call]
        leaves, spec = tree_flatten(output)
        tensors = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
        reducer.prepare_for_backward(tensors + _tensors_in_dataclasses(leaves))
        if not tensors:
            return output
        passed = iter(_Sink.apply(reducer, *tensors))  # type: ignore[no-untyped-call]
        leaves = [next(passed) if isinstance(x, torch.Tensor) and x.requires_grad else x for x in leaves]
        return tree_unflatten(leaves, spec)

    def _sync_buffers(self) -> None:
        if self.world_size > 1:
            with torch.no_grad():
                _comm.broadcast_coalesced(
                    self._buffer_list, self._authoritative_rank, self.process_group, "broadcast of buffers"
                )

    # ---- training controls --------------------------------------------------------------------------

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Skip gradient synchronization for forwards run inside; gradients accumulate locally.

        Example:
            >>> # with model.no_sync():
            >>> #     model(x1).sum().backward()   # local accumulation
            >>> # model(x2).sum().backward()       # synchronizes the sum of both
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def register_comm_hook(self, state: Any, hook: CommHook) -> None:
        """Replace the bucket all-reduce with ``hook(state, bucket) -> Future[Tensor]``; only once.

        Args:
            state: passed to every call of ``hook`` (e.g. a process group or ``PowerSGDState``).
            hook: see :mod:`loom.parallel.comm_hooks`; torch's ``ddp_comm_hooks`` work too.

        Raises:
            TypeError: if ``hook`` is not callable.
            RuntimeError: if a hook is already registered or training has started.

        Example:
            >>> # from loom.parallel.comm_hooks import bf16_compress_hook
            >>> # model.register_comm_hook(None, bf16_compress_hook)
        """
        if not callable(hook):
            raise TypeError(f"register_comm_hook: hook must be callable, got {hook!r}")
        if self._hook_registered:
            raise RuntimeError(
                "register_comm_hook: a communication hook is already registered (only one allowed)"
            )
        if self.reducer.iteration > 0:
            raise RuntimeError("register_comm_hook: register the hook before the first backward")
        self._hook_registered = True
        self.reducer.comm_hook = hook
        self.reducer.comm_state = state

    def join(
        self,
        divide_by_initial_world_size: bool = True,
        enable: bool = True,
        throw_on_early_termination: bool = False,
    ) -> Join:
        """Context manager for uneven inputs: a rank that runs out of batches shadows the others' collectives.

        Args:
            divide_by_initial_world_size: average over the initial world size (default) or over the ranks
                that still have inputs.
            enable: ``False`` makes the context a no-op.
            throw_on_early_termination: raise on every rank as soon as one rank runs out of inputs.

        Example:
            >>> # with model.join():
            >>> #     for x in my_uneven_batches:
            >>> #         model(x).sum().backward()
        """
        return Join(self, divide_by_initial_world_size, enable, throw_on_early_termination)

    def _set_static_graph(self) -> None:
        if self.reducer.iteration > 0:
            raise RuntimeError("_set_static_graph: call it before the first iteration")
        if not self.static_graph:
            self.reducer.remove_hooks()
            named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
            self.static_graph = True
            self.reducer = Reducer(
                [p for _, p in named],
                [n for n, _ in named],
                self.process_group,
                bucket_cap_mb=self.bucket_bytes_cap / (1024 * 1024),
                gradient_as_bucket_view=self.gradient_as_bucket_view,
                find_unused_parameters=self.find_unused_parameters,
                static_graph=True,
                sync_create_graph=self.reducer.sync_create_graph,
            )


def _tensors_in_dataclasses(leaves: list[Any]) -> list[torch.Tensor]:
    """Tensors held by dataclass outputs (opaque to tree_flatten), so the unused-parameter walk sees them."""
    found: list[torch.Tensor] = []
    for leaf in leaves:
        if dataclasses.is_dataclass(leaf) and not isinstance(leaf, type):
            inner, _ = tree_flatten([getattr(leaf, f.name) for f in dataclasses.fields(leaf)])
            found += [x for x in inner if isinstance(x, torch.Tensor) and x.requires_grad]
            found += _tensors_in_dataclasses(inner)
    return found


def _describe(entry: tuple[str, tuple[int, ...], str] | None) -> str:
    if entry is None:
        return "no such parameter"
    name, shape, dtype = entry
    return f"{name!r} of shape {list(shape)} and {dtype}"


def _device_str(device: int | torch.device) -> str:
    return f"cuda:{device}" if isinstance(device, int) else str(device)


def _to_device(tree: Any, device: torch.device) -> Any:
    leaves, spec = tree_flatten(tree)
    moved = [x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x for x in leaves]
    return tree_unflatten(moved, spec)
