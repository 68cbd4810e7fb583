"""Backends: how a traced graph runs. Each builder returns a runner ``(list of tensors) -> list of tensors``.

- ``"replay"``: the graph as generated Python code (see NOTE [why replay generates its own code]).
- ``"cuda_graph"``: the replay captured in a CUDA graph; each call copies the inputs into static buffers
  (or reads them in place, see NOTE [inputs read in place]), replays the graph and returns copies of the
  static outputs.
- ``"inductor"``: the graph handed to ``torch.compile`` (compiled on the first call).

NOTE [default backend]
With ``backend=None`` a graph whose tensors (inputs, captured constants) all live on one CUDA device, that
does not record autograd and does not write into captured tensors runs as ``"cuda_graph"``: the workloads
this is for are bound by launch overhead, which a CUDA graph removes for the price of one capture. Anything
else runs as ``"replay"``, which starts instantly; ``"inductor"`` (kernel fusion, seconds to compile) is
only used when asked for.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ._codegen import generate
from ._trace import Traced

BACKENDS = ("cuda_graph", "inductor", "replay")
Runner = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def _devices(traced: Traced, inputs: list[torch.Tensor]) -> set[torch.device]:
    # 0-dim CPU constants (a lifted Python scalar) are read as kernel arguments: they do not count.
    constants = [c for c in traced.constants if c.dim() != 0 or c.device.type != "cpu"]
    return {t.device for t in (*inputs, *constants)}


def _records_autograd(traced: Traced, inputs: list[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in (*inputs, *traced.constants))


def cuda_graph_problem(traced: Traced, inputs: list[torch.Tensor]) -> str | None:
    """Why this graph cannot be captured as a CUDA graph (None if it can)."""
    devices = _devices(traced, inputs)
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if len(devices) != 1 or next(iter(devices)).type != "cuda":
        return f"its tensors are not all on one CUDA device ({sorted(str(d) for d in devices)})"
    if not inputs:
        return "it has no tensor inputs"
    if _records_autograd(traced, inputs):
        return "it records autograd (an input or captured tensor requires grad)"
    if any(n.target is torch.ops.aten._local_scalar_dense.default for n in traced.gm.graph.nodes):
        return "it reads tensor values on the host (.item()), which a CUDA graph cannot capture"
    if traced.mutates_constants:
        return "it writes into a captured tensor (warm-up runs would repeat the write)"
    return None


def default_backend(traced: Traced, inputs: list[torch.Tensor]) -> str:
    """See NOTE [default backend]."""
    return "cuda_graph" if cuda_graph_problem(traced, inputs) is None else "replay"


class CudaGraphRunner:
    """One captured CUDA graph. See the ``torch.cuda.graphs`` recipe and NOTE [inputs read in place].

    Inputs in ``in_place`` are read from the caller's tensors, which the runner keeps alive; the others are
    copied into static buffers on every call.
    """

    def __init__(
        self,
        fn: Callable[..., list[torch.Tensor]],
        traced: Traced,
        inputs: list[torch.Tensor],
        in_place: frozenset[int] = frozenset(),
    ):
        self.mutated = traced.mutated_inputs
        self.in_place = in_place
        # Same strides where the input is dense; contiguous where it is not (an expanded input).
        self.static_inputs = [
            t if i in in_place else torch.empty_like(t, memory_format=torch.preserve_format)
            for i, t in enumerate(inputs)
        ]
        self.copied = [i for i in range(len(inputs)) if i not in in_place]
        self._copy_in(inputs)
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: lazy init, cuBLAS handles, allocator pools
                fn(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        self._copy_in(inputs)  # the warm-up may have written into them
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # a private memory pool per graph: safe in any replay order
            self.static_outputs = list(fn(*self.static_inputs))

    def reads(self, inputs: list[torch.Tensor]) -> bool:
        """Whether the in-place inputs of this call are the very memory the graph was captured on."""
        static = self.static_inputs
        return all(
            inputs[i].data_ptr() == static[i].data_ptr() and inputs[i].stride() == static[i].stride()
            for i in self.in_place
        )

    def _copy_in(self, inputs: list[torch.Tensor]) -> None:
        if self.copied:
            _copy([self.static_inputs[i] for i in self.copied], [inputs[i] for i in self.copied])

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        self._copy_in(inputs)
        self.graph.replay()
        for i in self.mutated:
            inputs[i].copy_(self.static_inputs[i])
        # The static outputs are overwritten by the next replay: hand out copies.
        return [out.clone() for out in self.static_outputs]


# NOTE [inputs read in place]
# Copying every input into the graph's static buffers costs a pass over each one per call: for an ensemble
# whose stacked weights are 100 MB, more than its last matmul. Inputs that are the same memory on two calls
# in a row (parameters, a fixed batch) are then read where they are: a second graph is captured on the
# caller's tensors (the runner holds references, so that memory cannot be handed to another tensor), and
# is replayed while those inputs keep their data pointers and strides; it reads their current values, so
# in-place updates between calls (an optimizer step) are seen. A call whose input moved runs the first,
# copying graph. Inputs the graph writes into are always copied. One in-place capture per shape.


class _CudaGraphs:
    """A copying graph first; then, once some inputs keep their memory, a graph that reads those in place."""

    IN_PLACE_CAPTURES = 2  # a second try if the first in-place set turned out to include a moving input

    def __init__(self, fn: Callable[..., list[torch.Tensor]], traced: Traced, inputs: list[torch.Tensor]):
        self.fn = fn
        self.traced = traced
        self.copying = CudaGraphRunner(fn, traced, inputs)
        self.in_place: CudaGraphRunner | None = None
        self.captures_left = self.IN_PLACE_CAPTURES
        self.last: list[int] | None = None  # data pointers of the previous call

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        runner = self.in_place
        if runner is not None and runner.reads(inputs):
            return runner(inputs)
        if self.captures_left:
            pointers = [t.data_ptr() for t in inputs]
            last, self.last = self.last, pointers
            if last is not None:
                mutated = set(self.traced.mutated_inputs)
                kept = frozenset(
                    i for i, (a, b) in enumerate(zip(pointers, last)) if a == b and i not in mutated
                )
                if kept and (runner is None or kept < runner.in_place):
                    self.captures_left -= 1
                    self.in_place = CudaGraphRunner(self.fn, self.traced, inputs, in_place=kept)
                    return self.in_place(inputs)
        return self.copying(inputs)


class _PerShape:
    """CUDA graphs are shape-specific: with ``dynamic=True`` one graph is captured per input shapes."""

    def __init__(self, fn: Callable[..., list[torch.Tensor]], traced: Traced) -> None:
        self.fn = fn
        self.traced = traced
        self.graphs: dict[Any, _CudaGraphs] = {}

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        key = tuple((t.shape, t.stride()) for t in inputs)
        runner = self.graphs.get(key)
        if runner is None:
            runner = self.graphs[key] = _CudaGraphs(self.fn, self.traced, inputs)
        return runner(inputs)


def _first_line(exc: BaseException) -> str:
    """The gist of an error: its first line, and the next one if the first only introduces it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _copy(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(dst, src)
    else:  # torch < 2.1
        for d, s in zip(dst, src):
            d.copy_(s)


def inductor_available() -> str | None:
    """Why ``torch.compile`` cannot be used here (None if it can)."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    try:
        import importlib

        dynamo = importlib.import_module("torch._dynamo")
        if hasattr(dynamo, "is_dynamo_supported") and not dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
        importlib.import_module("torch._inductor")
    except Exception as exc:  # an incomplete install
        return f"torch.compile cannot be imported ({type(exc).__name__}: {exc})"
    return None


def inductor_runner(traced: Traced, dynamic: bool) -> Runner:
    """``torch.compile(graph, backend="inductor")``; compiles on the first call."""
    compiled = torch.compile(traced.gm, backend="inductor", dynamic=dynamic, fullgraph=True)

    def run(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return compiled(*inputs)  # type: ignore[no-any-return]

    return run


def build(
    name: str, traced: Traced, inputs: list[torch.Tensor], dynamic: bool, call: str, explicit: bool = True
) -> tuple[Runner, str, float, list[torch.Tensor] | None]:
    """The runner for backend ``name`` (``"replay"`` if it cannot run here; warns if asked for), the backend
    actually used, the seconds spent compiling, and the outputs of the first run if building ran it."""
    fn, _ = generate(traced.gm)
    start = time.perf_counter()
    if name == "cuda_graph":
        problem = cuda_graph_problem(traced, inputs)
        if problem is None:
            try:  # capture now, so that a failure can still fall back
                runner: Runner = _PerShape(fn, traced) if dynamic else _CudaGraphs(fn, traced, inputs)
                first = runner(inputs)
            except Exception as exc:
                problem = f"capture failed ({type(exc).__name__}: {_first_line(exc)})"
            else:
                return runner, name, time.perf_counter() - start, first
        if explicit:  # the default choice falls back quietly (it only picks cuda_graph where it should work)
            warnings.warn(
                f"{call}: backend='cuda_graph' cannot be used: {problem}; using 'replay'", stacklevel=4
            )
    elif name == "inductor":
        problem = inductor_available()
        if problem is None:
            runner = inductor_runner(traced, dynamic)
            try:
                first = runner(inputs)
            except Exception as exc:
                problem = f"torch.compile failed ({type(exc).__name__}: {_first_line(exc)})"
            else:
                return runner, name, time.perf_counter() - start, first
        warnings.warn(f"{call}: backend='inductor' cannot be used: {problem}; using 'replay'", stacklevel=4)

    def run(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return fn(*inputs)  # type: ignore[no-any-return]

    return run, "replay", time.perf_counter() - start, None
