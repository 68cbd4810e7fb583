"""Tracing a (transformed) function into a flat FX graph of aten ops with ``make_fx``.

NOTE [tracing through Loom's transforms]
``make_fx`` runs the function on fake tensors under a dispatch mode that records every aten op. Loom's
wrappers (``BatchedTensor``, per-level autodiff wrappers) are ``__torch_dispatch__`` subclasses: the mode sees
an op on them first, declines it, the wrapper runs its batching rule or autodiff step, and the plain aten ops
it issues on the inner tensors reach the mode and are recorded. ``torch.autograd.grad`` and forward AD run
on the fake tensors too, so their backward and tangent ops are recorded as ordinary forward ops. What is
left is a graph of plain aten ops with no Loom wrapper in it.

Everything Python does during the trace happens once: level counters advance, warn-once warnings fire,
branches on shapes are baked in. Random ops stay ops in the graph (``aten.randn``, ``aten.bernoulli_``), so
each replay draws fresh numbers, including the per-example draws of ``randomness='different'``. Tensors the
function captures (closures, globals, module parameters) become graph constants held by reference, so
in-place updates to them (an optimizer step) are seen by later calls; rebinding a name to a new tensor is not.
Fake tensors make data-dependent Python control flow (``if x.sum() > 0``, ``.item()``, ``.tolist()``) fail
during the trace instead of silently baking in one branch; the caller then falls back to eager.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch.fx.experimental.proxy_tensor import make_fx

from .. import _levels
from ._passes import simplify
from ._signature import flatten, unflatten, unflatten_inputs

_SIMPLE_OUTPUTS = (bool, int, float, str, type(None), torch.dtype, torch.device)


class UntraceableError(Exception):
    """The function cannot be captured as a graph for these inputs (the reason is the message)."""


@dataclass
class Traced:
    """A traced graph and what is needed to call it and rebuild the function's outputs."""

    gm: torch.fx.GraphModule
    tensor_positions: list[int]  # which input leaves are graph inputs, in order
    out_spec: Any
    out_leaves: list[Any]  # the output leaves, with None where a graph output goes
    out_tensor_positions: list[int]
    single: bool  # the function returns one tensor (no pytree to rebuild)
    mutated_inputs: list[int] = field(default_factory=list)  # graph-input indices written in place
    mutates_constants: bool = False
    constants: list[torch.Tensor] = field(default_factory=list)
    guard: Callable[[list[torch.Tensor]], bool] | None = None  # dynamic shapes: does this graph fit?

    def rebuild(self, outs: list[torch.Tensor]) -> Any:
        """The function's output from the graph's outputs."""
        leaves = list(self.out_leaves)
        for pos, out in zip(self.out_tensor_positions, outs):
            leaves[pos] = out
        return unflatten(self.out_spec, iter(leaves))


def trace(func: Callable[..., Any], leaves: list[Any], in_spec: Any, dynamic: bool) -> Traced:
    """Trace ``func`` on inputs like ``leaves`` into a flat graph; raises ``UntraceableError``."""
    positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
    template = list(leaves)
    for i in positions:
        template[i] = None
    result: dict[str, Any] = {}

    def flat(*tensors: torch.Tensor) -> list[torch.Tensor]:
        filled = list(template)
        for i, t in zip(positions, tensors):
            filled[i] = t
        args, kwargs = unflatten_inputs(filled, in_spec)
        out = func(*args, **kwargs)
        result["single"] = isinstance(out, torch.Tensor)
        out_leaves: list[Any] = []
        out_spec = flatten(out, out_leaves)
        tensor_pos = [i for i, leaf in enumerate(out_leaves) if isinstance(leaf, torch.Tensor)]
        for leaf in out_leaves:
            if not isinstance(leaf, (torch.Tensor, *_SIMPLE_OUTPUTS)):
                raise UntraceableError(f"it returns a {type(leaf).__name__}, which a graph cannot output")
        result["spec"] = out_spec
        result["leaves"] = [None if i in tensor_pos else leaf for i, leaf in enumerate(out_leaves)]
        result["positions"] = tensor_pos
        return [out_leaves[i] for i in tensor_pos]

    inputs = [leaves[i] for i in positions]
    depth = len(_levels.stack())
    try:
        if dynamic:
            try:
                with _symbolic_batch_sizes():
                    gm = make_fx(flat, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*inputs)
            except UntraceableError:
                raise
            except Exception:  # the batch size may not stay symbolic everywhere: let it specialize
                _restore_stack(depth)
                gm = make_fx(flat, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*inputs)
        else:
            gm = make_fx(flat, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
    except UntraceableError:
        raise
    except Exception as exc:
        raise UntraceableError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        _restore_stack(depth)
    constants = [_attr(gm, n.target) for n in gm.graph.nodes if n.op == "get_attr"]
    constants = [c for c in constants if isinstance(c, torch.Tensor)]
    records_autograd = torch.is_grad_enabled() and any(t.requires_grad for t in (*inputs, *constants))
    simplify(gm, records_autograd)
    traced = Traced(gm, positions, result["spec"], result["leaves"], result["positions"], result["single"])
    _find_mutations(traced)
    traced.constants = constants
    if dynamic:
        traced.guard = _shape_guard(gm)
    return traced


# NOTE [symbolic batch sizes]
# loom.func reads vmap batch sizes with ``int(x.shape[d])`` (``_vmap.vmap_impl``, ``_vmap._chunked``,
# ``_rules._table.batch_size_of``). Under a symbolic trace ``int()`` of a SymInt adds a guard
# ``batch == <traced size>``, so every new batch size would trace again. While a ``dynamic=True`` trace
# runs, those modules see an ``int`` that returns SymInts unchanged (and is otherwise the builtin); the
# batch size then stays symbolic through the batching rules. If that trace fails, the trace is repeated
# without it (the batch size specializes and the shape guards re-trace per size: correct, not dynamic).
class _KeepSymIntMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, builtins.int)

    def __call__(cls, value: Any = 0, *base: Any) -> Any:
        return value if isinstance(value, torch.SymInt) else builtins.int(value, *base)


class _KeepSymInt(metaclass=_KeepSymIntMeta):
    """``int`` that returns SymInts as they are. See NOTE [symbolic batch sizes]."""


_INT_READERS = ("loom.func._vmap", "loom.func._rules._table")


@contextmanager
def _symbolic_batch_sizes() -> Iterator[None]:
    modules = [sys.modules[name] for name in _INT_READERS if name in sys.modules]
    patched = [m for m in modules if "int" not in vars(m)]
    for module in patched:
        setattr(module, "int", _KeepSymInt)  # noqa: B010 (a module global named like a builtin)
    try:
        yield
    finally:
        for module in patched:
            delattr(module, "int")


def _first_line(exc: BaseException) -> str:
    """The gist of an error: its first line, and the next one if the first only introduces it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _restore_stack(depth: int) -> None:
    """A failed trace must not leave transform levels behind (push_level pops in ``finally``; this is a net)."""
    while len(_levels._STACK) > depth:
        popped = _levels._STACK.pop()
        _levels.LIVE_VMAP.pop(popped.id, None)


def _attr(gm: torch.nn.Module, dotted: str) -> Any:
    value: Any = gm
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _root(node: Any) -> Any:
    """Follow view ops back to the tensor they view."""
    while isinstance(node, torch.fx.Node) and node.op == "call_function":
        schema = getattr(node.target, "_schema", None)
        if schema is None or not schema.returns or schema.returns[0].alias_info is None or not node.args:
            return node
        node = node.args[0]
    return node


def _find_mutations(traced: Traced) -> None:
    placeholders = [n for n in traced.gm.graph.nodes if n.op == "placeholder"]
    index = {n: i for i, n in enumerate(placeholders)}
    mutated: set[int] = set()
    for node in traced.gm.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        if schema is None or not schema.is_mutable:
            continue
        for arg_schema, arg in zip(schema.arguments, node.args):
            if arg_schema.alias_info is None or not arg_schema.alias_info.is_write:
                continue
            root = _root(arg)
            if root in index:
                mutated.add(index[root])
            elif isinstance(root, torch.fx.Node) and root.op == "get_attr":
                traced.mutates_constants = True
    traced.mutated_inputs = sorted(mutated)


def _shape_guard(gm: torch.fx.GraphModule) -> Callable[[list[torch.Tensor]], bool] | None:
    """The shape guards of a symbolic trace as a predicate over the graph inputs (None: no guards)."""
    from torch._guards import detect_fake_mode

    values = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    fake_mode = detect_fake_mode(values) if values else None
    shape_env = getattr(fake_mode, "shape_env", None)
    if shape_env is None:
        return None
    try:
        code = shape_env.produce_guards_expression(values, ignore_static=False)
    except TypeError:  # older signature
        code = shape_env.produce_guards_expression(values)
    if code is None:
        return None

    def guard(tensors: list[torch.Tensor]) -> bool:
        return bool(shape_env.evaluate_guards_expression(code, tensors))

    return guard
