"""``loom.func.compile``: the public shell and the compiled function (cache, fallback, statistics)."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .. import _levels
from ._backends import BACKENDS, build, default_backend
from ._signature import describe, flatten_inputs, has_foreign_tensors, signature
from ._trace import Traced, UntraceableError, trace


class CacheInfo(NamedTuple):
    """Statistics of one compiled function (``compiled.cache_info()``)."""

    hits: int  # calls served by a cached graph
    misses: int  # calls that traced (or tried to trace) a new graph
    entries: int  # graphs (and eager fallbacks) in the cache
    eager_calls: int  # calls that ran the function eagerly (fallbacks, calls inside a transform)
    trace_seconds: float  # total time spent tracing
    compile_seconds: float  # total time spent in backends (CUDA graph capture, torch.compile)


class _Entry:
    __slots__ = ("backend", "eager", "positions", "run", "traced")

    def __init__(self, traced: Traced | None, run: Any, backend: str, positions: list[int]) -> None:
        self.traced = traced
        self.run = run
        self.backend = backend
        self.eager = traced is None
        self.positions = positions


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


class CompiledFunction:
    """``func`` traced into flat graphs, one per input signature. Made by :func:`loom.func.compile`."""

    def __init__(self, func: Callable[..., Any], backend: str | None, dynamic: bool, fullgraph: bool) -> None:
        functools.update_wrapper(self, func)
        self._func = func
        self._backend = backend
        self._dynamic = dynamic
        self._fullgraph = fullgraph
        self._call = f"compile({_name(func)})"
        self._cache: dict[Any, list[_Entry]] = {}
        self._keep: list[Any] = []
        self._last: _Entry | None = None
        self._warned = False
        self._hits = self._misses = self._eager_calls = 0
        self._trace_seconds = self._compile_seconds = 0.0

    def __repr__(self) -> str:
        return f"<loom.func.compile of {self._func!r}, backend={self._backend!r}, dynamic={self._dynamic}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _levels._STACK:  # called inside a Loom transform: its wrappers cannot be graph inputs
            self._eager_calls += 1
            return self._func(*args, **kwargs)
        if not kwargs and all(type(a) is torch.Tensor for a in args):
            leaves: list[Any] = list(args)
            spec: Any = None  # computed on a miss only: flattening costs microseconds
            key: Any = ("flat", *signature(leaves, None, self._dynamic, [])[1:])
        else:
            leaves, spec = flatten_inputs(args, kwargs)
            if has_foreign_tensors(leaves):
                self._eager_calls += 1
                return self._func(*args, **kwargs)
            keep: list[Any] = []
            key = signature(leaves, spec, self._dynamic, keep)
        entries = self._cache.get(key)
        if entries is not None:
            inputs = [leaves[i] for i in entries[0].positions]
            for entry in entries:
                if entry.eager:
                    self._eager_calls += 1
                    return self._func(*args, **kwargs)
                traced = entry.traced
                assert traced is not None
                if traced.guard is None or traced.guard(inputs):
                    self._hits += 1
                    outs = entry.run(inputs)
                    return outs[0] if traced.single else traced.rebuild(outs)
        if spec is None:
            leaves, spec = flatten_inputs(args, kwargs)
        else:
            self._keep.extend(keep)
        return self._miss(key, leaves, spec, args, kwargs)

    def _miss(self, key: Any, leaves: list[Any], spec: Any, args: Any, kwargs: Any) -> Any:
        self._misses += 1
        start = time.perf_counter()
        try:
            traced = trace(self._func, leaves, spec, self._dynamic)
        except UntraceableError as exc:
            self._trace_seconds += time.perf_counter() - start
            return self._fall_back(exc, key, leaves, spec, args, kwargs)
        self._trace_seconds += time.perf_counter() - start
        inputs = [leaves[i] for i in traced.tensor_positions]
        backend = self._backend or default_backend(traced, inputs)
        run, used, seconds, first = build(
            backend, traced, inputs, self._dynamic, self._call, explicit=self._backend is not None
        )
        self._compile_seconds += seconds
        entry = _Entry(traced, run, used, traced.tensor_positions)
        self._cache.setdefault(key, []).append(entry)
        self._last = entry
        outs = first if first is not None else run(inputs)
        return traced.rebuild(outs)

    def _fall_back(
        self, exc: UntraceableError, key: Any, leaves: list[Any], spec: Any, args: Any, kwargs: Any
    ) -> Any:
        where = f"{self._call}{describe(leaves, spec)}"
        if self._fullgraph:
            raise RuntimeError(
                f"{where}: cannot trace {_name(self._func)} into a graph (fullgraph=True): {exc}"
            ) from exc
        out = self._func(*args, **kwargs)  # if the function itself fails, that error is the one to see
        positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        self._cache.setdefault(key, []).append(_Entry(None, None, "eager", positions))
        self._eager_calls += 1
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{where}: cannot trace {_name(self._func)} into a graph, running it eagerly for inputs like "
                f"these: {exc} (data-dependent control flow or .item()/.tolist() cannot be traced; "
                "pass fullgraph=True to make this an error)",
                UserWarning,
                stacklevel=4,
            )
        return out

    def _last_traced(self, what: str) -> Traced:
        if self._last is None or self._last.traced is None:
            raise RuntimeError(f"{self._call}.{what}: nothing has been traced yet; call the function first")
        return self._last.traced

    @property
    def graph(self) -> torch.fx.Graph:
        """The most recently traced graph (plain aten ops)."""
        return self._last_traced("graph").gm.graph

    @property
    def graph_module(self) -> torch.fx.GraphModule:
        """The most recently traced graph as a ``GraphModule`` (holds the captured constants)."""
        return self._last_traced("graph_module").gm

    @property
    def code(self) -> str:
        """Python code of the most recently traced graph."""
        return str(self._last_traced("code").gm.code)

    @property
    def backend(self) -> str | None:
        """The backend of the most recently traced graph (``None`` before the first trace)."""
        return None if self._last is None else self._last.backend

    def cache_info(self) -> CacheInfo:
        """Hits, misses, cache entries, eager calls, and the time spent tracing and compiling."""
        entries = sum(len(v) for v in self._cache.values())
        return CacheInfo(
            self._hits, self._misses, entries, self._eager_calls, self._trace_seconds, self._compile_seconds
        )

    def cache_clear(self) -> None:
        """Drop every cached graph (statistics are kept); the next call traces again."""
        self._cache.clear()
        self._keep.clear()
        self._last = None


def compile(
    func: Callable[..., Any] | None = None,
    /,
    *,
    backend: str | None = None,
    dynamic: bool = False,
    fullgraph: bool = False,
) -> Any:
    """Trace ``func`` (any composition of Loom transforms) into flat graphs of aten ops and replay them.

    The first call with a new input signature (pytree structure, tensor shapes, dtypes, devices,
    ``requires_grad``, Python scalars) traces ``func`` with ``make_fx`` on fake tensors into a graph with no
    Loom wrappers left; later calls with the same signature run the cached graph. Functions whose Python
    control flow depends on tensor values (``if x.sum() > 0``, ``.item()``) cannot be traced: they run
    eagerly with one warning (or raise with ``fullgraph=True``). Random ops stay ops in the graph and draw
    fresh numbers on every call, ``randomness='different'`` included. Python side effects (printing,
    appending to lists) happen once, while tracing. Tensors ``func`` captures (closures, module
    parameters) are read by reference, so in-place updates are seen; rebinding them is not (call
    ``cache_clear()``).

    Args:
        func: The function to compile. Without it, ``compile(...)`` returns a decorator.
        backend: ``"replay"`` (run the graph as generated Python code), ``"cuda_graph"`` (capture the replay
            in a CUDA graph; inputs are copied into static buffers, except those that keep their memory
            from call to call, such as parameters, which are read in place) or ``"inductor"`` (``torch.compile`` the graph).
            ``None`` picks ``"cuda_graph"`` for graphs on one CUDA device that record no autograd and
            ``"replay"`` otherwise. A backend that cannot run the graph warns and uses ``"replay"``.
        dynamic: Trace with symbolic shapes, so that sizes (such as the batch size) may change without a
            new trace; the graph's shape guards decide when one is still needed.
        fullgraph: Raise instead of falling back to eager when ``func`` cannot be traced.

    Returns:
        A callable with ``func``'s signature. It exposes ``.graph`` and ``.code`` (the last traced graph),
        ``.graph_module``, ``.backend``, ``cache_info()`` and ``cache_clear()``.

    Raises:
        ValueError: for an unknown ``backend``.
        TypeError: if ``func`` is not callable or ``dynamic``/``fullgraph`` are not bools.
        RuntimeError: with ``fullgraph=True``, when ``func`` cannot be traced.

    Example:
        >>> import torch
        >>> from loom.func import compile, grad, vmap
        >>> per_example_grad = compile(vmap(grad(lambda x: (x.sin() ** 2).sum())))
        >>> per_example_grad(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
        >>> per_example_grad(torch.ones(4, 3)).shape  # the same signature: the cached graph runs
        torch.Size([4, 3])
        >>> per_example_grad.cache_info().hits
        1
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"compile: backend must be None or one of {BACKENDS}, got {backend!r}")
    if not isinstance(dynamic, bool):
        raise TypeError(f"compile: dynamic must be a bool, got {dynamic!r}")
    if not isinstance(fullgraph, bool):
        raise TypeError(f"compile: fullgraph must be a bool, got {fullgraph!r}")
    if func is None:
        return functools.partial(compile, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
    if not callable(func):
        raise TypeError(f"compile: expected a callable to compile, got {type(func).__name__}: {func!r}")
    return CompiledFunction(func, backend, dynamic, fullgraph)
