"""The gradient reducer: flat buckets, per-parameter hooks, ordered asynchronous all-reduce, write-back.

One iteration: the wrapper's forward calls :meth:`Reducer.prepare_for_backward`; during backward each
parameter's post-accumulate-grad hook marks it ready and its gradient goes into its bucket slot (see
_fill.py); a full bucket's all-reduce is launched asynchronously, strictly in bucket order; a callback
queued on the autograd engine waits for the buckets and writes the averaged gradients back.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch

from loom.parallel import _comm
from loom.parallel._bucketing import BucketSpec, plan_buckets
from loom.parallel._buckets import (
    Bucket,
    make_buckets,
    wait_bucket,
    wait_buckets,
    write_back,
    write_back_create_graph,
)
from loom.parallel._fill import fill_bucket, reject_layout, scale_operand
from loom.parallel._grad_bucket import GradBucket
from loom.parallel._static import StaticGraph
from loom.parallel._unused import reached_parameters
from loom.parallel._used_map import TAIL_DTYPES, UsedMap

CommHook = Callable[[Any, GradBucket], "torch.futures.Future[Any]"]

# NOTE [static graph]
# With static_graph=True the first synchronized backward only records: how often each parameter's hook
# fires (reentrant checkpointing of a layer used twice fires it twice), which parameters never fire
# (unused, or behind an output the loss ignores) and the order of each parameter's last firing. Its
# all-reduce is delayed to the end of backward, when the record is complete. Afterwards buckets are
# rebuilt in rank 0's ready order, a parameter is ready at its recorded last firing, unused ones are ready
# when backward starts, and no graph walk is needed. A parameter that fires more or fewer times than
# recorded is a graph change and raises, naming it. The record is taken on the first *synchronized*
# backward, so no_sync() steps before it are fine.
#
# The sink (the autograd Function the wrapper puts on the outputs, see _ddp.py) starts backward before any
# hook fires, so the final callback goes on the outermost graph task. After the record it is needed only
# if the first hook fired inside a reentrant backward (the last layers checkpointed), whose graph task ends
# before the outer one. Otherwise the first hook starts backward just as well (the same graph runs its
# nodes in the same order every time), and outputs go back unwrapped, as torch does after its first
# static-graph iteration: an autograd node less per forward and per backward.


class Reducer:
    """Buckets, hooks and the all-reduce schedule for one wrapped module."""

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        names: list[str],
        group: Any,
        *,
        bucket_cap_mb: float,
        gradient_as_bucket_view: bool,
        find_unused_parameters: bool,
        static_graph: bool,
        sync_create_graph: bool,
    ) -> None:
        self.params = params
        self.names = names
        self.group = group
        self.world = _comm.world_size(group)
        self.divisor = self.world
        self.avg_in_collective = _comm.supports_avg(group)
        self.bucket_cap_mb = bucket_cap_mb
        self.view_mode = gradient_as_bucket_view
        self.find_unused = find_unused_parameters and not static_graph
        self.static = StaticGraph(len(params)) if static_graph else None
        self.needs_sink = self.find_unused or static_graph  # See NOTE [static graph] on the sink
        self.sync_create_graph = sync_create_graph
        self.comm_hook: CommHook | None = None
        self.comm_state: Any = None
        self.iteration = 0
        n = len(params)
        self._index_of = {id(p): i for i, p in enumerate(params)}
        self._used = [False] * n  # hook fired since the last synchronized backward
        self._expecting = False  # a synchronized forward ran; its backward must reduce
        self._in_backward = False
        self._callback_queued = False
        self._reached: set[int] = set()
        self._create_graph = False
        self._warned_create_graph = False
        self._used_map = UsedMap(n)
        self._scale: float | None = None  # what gradients are multiplied by on their way into a bucket
        self._slot_scale: list[Any] = []  # the same, per parameter, as each bucket's copies take it
        self._map_in_tail = False
        self._build(plan_buckets(params, bucket_cap_mb))
        self._reset()
        self._handles = [
            p.register_post_accumulate_grad_hook(self._hook_for(i))  # type: ignore[no-untyped-call]
            for i, p in enumerate(params)
        ]

    # ---- layout -------------------------------------------------------------------------------------

    def _build(self, specs: list[BucketSpec]) -> None:
        """Allocate one flat buffer per bucket; in view mode existing gradients move into it."""
        # See NOTE [the used map rides in the last bucket]
        tail = len(self.params) if self.find_unused and specs[-1].dtype in TAIL_DTYPES else 0
        self.buckets = make_buckets(specs, self.params, self.view_mode, tail)
        self._bucket_of = [0] * len(self.params)
        self._slot_of = [0] * len(self.params)
        for b, spec in enumerate(specs):
            for k, i in enumerate(spec.indices):
                self._bucket_of[i] = b
                self._slot_of[i] = k
        self._bucket_sizes = [len(spec.indices) for spec in specs]
        self._view_of = [self.buckets[b].views[k] for b, k in zip(self._bucket_of, self._slot_of)]
        # See NOTE [when gradients are copied into buckets] in _fill.py
        self._copy_when_ready = [bucket.buffer.device.type == "cpu" for bucket in self.buckets]
        self._slot_scale = []

    def rebuild(self, order: list[int]) -> None:
        """Re-plan buckets in ``order`` (used once by static graph, see NOTE [static graph])."""
        with torch.no_grad():
            self._build(plan_buckets(self.params, self.bucket_cap_mb, order=order))
        self._reset()

    # ---- one iteration ------------------------------------------------------------------------------

    def _reset(self) -> None:
        self._drain()
        n = len(self.params)
        self._ready = [False] * n
        self._pending = list(self._bucket_sizes)
        self._next = 0
        self._zero: dict[int, list[int]] = {}
        self._reached = set()
        self._create_graph = False
        if self.static is not None:
            self.static.start_iteration()

    def prepare_for_backward(self, outputs: list[torch.Tensor]) -> None:
        """Called by a synchronized forward; several forwards may share one backward."""
        if self._in_backward:
            raise RuntimeError(
                "DistributedDataParallel: a new forward started while the previous backward had not finished "
                f"reducing gradients; parameters still waiting: {self._missing_names()}. Pass "
                "find_unused_parameters=True if some outputs do not take part in the loss."
            )
        if not self._expecting:
            self._reset()
            self._expecting = True
        if self.find_unused:
            self._reached |= reached_parameters(outputs, self._index_of)

    def _hook_for(self, i: int) -> Callable[[torch.Tensor], None]:
        # A weak reference: once the wrapper is gone its hooks do nothing (and __del__ removes them).
        # _on_grad is looked up per call so a profiler can wrap the instance's method.
        ref = weakref.ref(self)

        def hook(param: torch.Tensor) -> None:
            reducer = ref()
            if reducer is not None:
                reducer._on_grad(i, param)

        return hook

    def _on_grad(self, i: int, param: torch.Tensor) -> None:
        try:
            grad = param.grad
            if grad is None:
                # autograd ran this leaf's node without a gradient (an output left out of the loss)
                if self._expecting and self.static is None and not self._ready[i]:
                    if not self._in_backward:
                        self.begin_backward()
                    self._mark_unused(i)
                return
            self._used[i] = True
            if not self._expecting:
                return  # no_sync() or a forward outside DDP: gradients just accumulate
            if not self._in_backward:
                self.begin_backward()
            static = self.static
            if static is not None:
                if static.recording:
                    static.fired(i)
                    return
                left = static.remaining[i] - 1  # inlined StaticGraph.fire: this is the per-parameter path
                static.remaining[i] = left
                if left:
                    if left > 0:
                        return
                    static.fired_too_often(i, self.names)
            elif self._ready[i]:
                raise RuntimeError(
                    f"DistributedDataParallel: parameter {self.names[i]!r} received a gradient twice in one "
                    "backward (was it reused under reentrant checkpointing, or marked unused but used?). "
                    "Pass static_graph=True if the graph is the same every iteration."
                )
            self._ready[i] = True
            b = self._bucket_of[i]  # inlined _param_ready
            if self._copy_when_ready[b]:
                self._copy_into_slot(i, param, grad)
            pending = self._pending[b] - 1
            self._pending[b] = pending
            if pending == 0 and b == self._next:
                self._launch_in_order()
        except BaseException:
            self._abort()
            raise

    def _drain(self) -> None:
        """Wait for collectives an aborted iteration left in flight (their buffers are about to be reused)."""
        wait_buckets(self.buckets)
        self._used_map.drain()

    def _abort(self) -> None:
        """Forget the iteration after an error in backward, so the next forward starts cleanly."""
        self._expecting = False
        self._in_backward = False
        self._callback_queued = False
        self._used = [False] * len(self.params)

    def begin_backward(self) -> None:
        """First event of a synchronized backward: queue the final callback, mark known-unused params."""
        if self._in_backward:
            return
        self._in_backward = True
        scale = self._grad_scale()
        if scale != self._scale or not self._slot_scale:
            self._scale = scale
            self._slot_scale = [scale_operand(scale, self.buckets[b].buffer) for b in self._bucket_of]
        self._map_in_tail = self._rides_in_tail()
        if not self._callback_queued:
            self._callback_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._finalize)
        if self.find_unused:
            reached = self._reached
            for i in range(len(self.params)):
                if i not in reached:
                    self._mark_unused(i)
        elif self.static is not None:
            if self.static.recording:
                self.static.began()
            else:
                for i in self.static.local_unused:
                    self._mark_unused(i)

    def _mark_unused(self, i: int) -> None:
        """Ready without a fresh gradient: its slot gets zeros, unless no_sync() steps left a real one."""
        self._settle(i, self._used[i])

    def _settle(self, i: int, has_grad: bool) -> None:
        """Parameter ``i`` is ready outside its hook; its slot gets ``.grad`` (``has_grad``) or zeros."""
        self._ready[i] = True
        b = self._bucket_of[i]
        if self._copy_when_ready[b]:
            param = self.params[i]
            self._copy_into_slot(i, param, param.grad if has_grad else None)
        elif not has_grad:
            self._zero.setdefault(b, []).append(self._slot_of[i])
        self._param_ready(i)

    def _param_ready(self, i: int) -> None:
        b = self._bucket_of[i]
        left = self._pending[b] - 1
        self._pending[b] = left
        if left == 0 and b == self._next:
            self._launch_in_order()

    def _launch_in_order(self) -> None:
        nb = len(self.buckets)
        while self._next < nb and self._pending[self._next] == 0:
            self._launch(self._next)
            self._next += 1
        if self._next == nb and not self._map_in_tail and self._needs_used_map():
            self._used_map.launch(self._used, self.buckets[0].buffer.device, self.group)

    def _needs_used_map(self) -> bool:
        return self.find_unused or (self.static is not None and self.static.recording)

    def _rides_in_tail(self) -> bool:
        """Whether this iteration's used map goes in the last bucket's tail (NOTE [the used map rides ...])."""
        return self.find_unused and self.comm_hook is None and self.buckets[-1].tail is not None

    def _grad_scale(self) -> float | None:
        # Without AVG in the collective (Gloo), gradients are scaled by 1/divisor while they are copied in,
        # as torch does: one pass over the bucket instead of a copy and a divide.
        if self.comm_hook is None and not (self.avg_in_collective and self.divisor == self.world):
            return 1.0 / self.divisor
        return None

    def _copy_into_slot(self, i: int, param: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Parameter ``i``'s final gradient (or zeros, for None) into its slot, scaled; see _fill.py."""
        view = self._view_of[i]
        scale = self._slot_scale[i]
        if grad is view:
            if scale is not None:
                view.mul_(scale)
            return
        if grad is None:
            view.zero_()
            return
        if grad.layout != torch.strided:
            reject_layout(self.names[i], grad)
        detached = grad.detach() if grad.requires_grad else grad
        if scale is None:
            view.copy_(detached)
        else:
            torch.mul(detached, scale, out=view)
        if self.view_mode and detached is grad:
            param.grad = view

    def _launch(self, b: int) -> None:
        bucket = self.buckets[b]
        grad_mode = torch.is_grad_enabled()
        if grad_mode:
            self._create_graph = True
        if not self._copy_when_ready[b]:
            with torch.no_grad():
                fill_bucket(
                    bucket, self._zero.get(b), self._scale, self.view_mode and not grad_mode, self.names
                )
        if self._map_in_tail and bucket.tail is not None:
            self._used_map.write_into(bucket.tail, self._used)
            self._start_collective(bucket, bucket.flat)
        else:
            self._start_collective(bucket, bucket.buffer)

    def _start_collective(self, bucket: Bucket, buffer: torch.Tensor) -> None:
        """Launch the bucket's reduction; the default path expects the buffer already scaled (see _launch)."""
        what = f"all-reduce of gradient bucket {bucket.index}"
        if self.comm_hook is not None:
            grad_bucket = GradBucket(
                bucket.index, buffer, bucket.params, bucket.views, bucket.index == len(self.buckets) - 1
            )
            bucket.future = self.comm_hook(self.comm_state, grad_bucket)
        elif self.avg_in_collective and self.divisor == self.world:
            bucket.work = _comm.all_reduce_async(buffer, self.group, True, what)
        else:
            bucket.work = _comm.all_reduce_async(buffer, self.group, False, what)

    # ---- end of backward ----------------------------------------------------------------------------

    def _finalize(self) -> None:
        if not self._in_backward:
            return  # the iteration was aborted by an error in backward
        self._callback_queued = False
        static = self.static
        problem: str | None = None
        try:
            if static is not None and static.recording:
                fired = static.fired_set()
                for i in range(len(self.params)):
                    if i in fired:
                        self._settle(i, True)
                    else:
                        self._mark_unused(i)
            elif self._next < len(self.buckets):
                problem = self._complete_missing()
            recording = static is not None and static.recording
            if self._create_graph or self._used_map.must_read(recording):
                wait_buckets(self.buckets)
                global_used = self._used_map.finish(recording)
                if self._create_graph:
                    self._warn_create_graph()
                    write_back_create_graph(self.buckets, self.sync_create_graph, global_used)
                else:
                    for bucket in self.buckets:
                        write_back(bucket, self.view_mode, global_used)
            else:
                # no used map to read first (none, or this rank used every parameter): each bucket is written
                # back while the later ones are still being reduced
                global_used = None if static is None else static.global_used
                for bucket in self.buckets:
                    wait_bucket(bucket)
                    write_back(bucket, self.view_mode, global_used)
                self._used_map.finish(recording)
            if recording:
                assert static is not None
                order = static.finish_recording(global_used, self._rank0_order)
                self.rebuild(order)
                self.needs_sink = not static.first_firing_outermost
        finally:
            self._expecting = False
            self._in_backward = False
            self._used = [False] * len(self.params)
            self.iteration += 1
        if problem is not None:
            raise RuntimeError(problem)

    def _rank0_order(self, order: list[int]) -> list[int]:
        device = self.buckets[0].buffer.device
        result: list[int] = _comm.broadcast_object(
            order, 0, self.group, device, "broadcast of the bucket order"
        )
        return result

    def _missing(self) -> list[int]:
        return [i for i in range(len(self.params)) if not self._ready[i]]

    def _missing_names(self) -> list[str]:
        return [self.names[i] for i in self._missing()]

    def _complete_missing(self) -> str | None:
        """Zero-fill parameters that never became ready so every bucket launches (peers must not hang)."""
        missing = self._missing()
        problem = None
        if self.static is not None:
            problem = self.static.describe_missing(missing, self.names)
        elif not self.find_unused:
            problem = (
                "DistributedDataParallel: parameters that received no gradient in this backward: "
                f"{[self.names[i] for i in missing]}. Pass find_unused_parameters=True if some parameters "
                "are unused in some iterations (or static_graph=True if the set never changes)."
            )
        for i in missing:
            self._used[i] = self._used[i] and self.static is None
            self._mark_unused(i)
        return problem

    def _warn_create_graph(self) -> None:
        if not self.sync_create_graph and not self._warned_create_graph:
            self._warned_create_graph = True
            warnings.warn(
                "DistributedDataParallel: backward(create_graph=True) gradients are synchronized as values "
                "only (their graph is dropped); pass sync_create_graph=True to keep them differentiable",
                UserWarning,
                stacklevel=3,
            )

    # ---- join ---------------------------------------------------------------------------------------

    def shadow_backward(self) -> None:
        """On a rank that has joined: match the others' bucket all-reduces with zeros."""
        self._drain()
        recording = self.static is not None and self.static.recording
        in_tail = self._rides_in_tail()  # then the zeros of the last bucket's tail say "nothing used"
        for bucket in self.buckets:
            self._start_collective(bucket, torch.zeros_like(bucket.flat if in_tail else bucket.buffer))
        if self._needs_used_map() and not in_tail:
            self._used_map.launch_zeros(self.buckets[0].buffer.device, self.group)
        wait_buckets(self.buckets)
        self._used_map.drain()
        if recording:
            # the others end their static-graph record now: take part in agreeing on the bucket order
            assert self.static is not None
            self.static.start_iteration()
            self.rebuild(self.static.finish_recording(None, self._rank0_order))

    def __del__(self) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        for handle in getattr(self, "_handles", ()):
            handle.remove()
        self._handles = []
