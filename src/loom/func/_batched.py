"""BatchedTensor: a per-example view of a physical tensor whose batch dimension is dimension 0.

A ``BatchedTensor`` is a wrapper subclass (``_make_wrapper_subclass``): it has the logical (per-example) shape,
holds the physical tensor in ``_value`` and the id of the vmap level that made it in ``_level``. Every aten op
on it reaches ``__torch_dispatch__``, which lets the highest level among the op's inputs handle it: unwrap that
level, run the op's batching rule on the physical tensors, rewrap. Physical tensors keep the batch dim first.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.autograd.forward_ad as _fwad
from torch.utils._mode_utils import no_dispatch

from ._levels import ALIAS_LEVEL_ATTR, LIVE_VMAP, VmapLevel
from ._rules import _table
from ._rules._table import RULES

aten = torch.ops.aten
_DETACH = aten.detach.default
_restore_python_tls: Any = torch._C._RestorePythonTLSSnapshot  # type: ignore[attr-defined]
_AD_INPLACE_OR_VIEW = torch._C.DispatchKey.ADInplaceOrView

# NOTE [re-entering autograd]
# ``__torch_dispatch__`` runs below autograd: ops on the physical tensors would not be recorded. When a
# physical tensor takes part in an outer differentiation (it requires grad, or a forward-AD level is live),
# the rule runs with the dispatch keys the vmap level saw on entry, restored with ``_ForceDispatchKeyGuard``
# (plus ``_RestorePythonTLSSnapshot``), so autograd and forward AD record the physical ops. The wrapper
# itself is recorded by autograd only for levels entered inside the vmap (vmap(grad(f))): each autograd
# "layer" sees its own tensors, which keeps levels apart.


class BatchedTensor(torch.Tensor):
    """A tensor batched over one vmap level (internal; users only ever see logical shapes)."""

    _value: torch.Tensor
    _level: int

    @staticmethod
    def __new__(cls, value: torch.Tensor, level: int) -> BatchedTensor:
        r = torch.Tensor._make_wrapper_subclass(
            cls, value.shape[1:], value.stride()[1:], dtype=value.dtype, device=value.device
        )
        r._value = value
        r._level = level
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        return f"BatchedTensor(level={self._level}, bdim=0, value={self._value!r})"

    @classmethod
    def __torch_dispatch__(  # type: ignore[override]
        cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        if func is _DETACH and type(args[0]) is BatchedTensor and args[0]._level in LIVE_VMAP:
            # The hottest op under vmap(grad): autograd detaches every tensor it saves. See NOTE
            # [detach for saved tensors] in _rules/core.py.
            self = args[0]
            if torch._C._dispatch_tls_is_dispatch_key_excluded(_AD_INPLACE_OR_VIEW):
                return BatchedTensor(self._value.detach(), self._level)
            return BatchedTensor(self._value, self._level)
        return dispatch(func, args, kwargs or {})


def _top_level(args: Any, kwargs: dict[str, Any]) -> int:
    top = 0
    for a in args:
        if isinstance(a, BatchedTensor):
            if a._level > top:
                top = a._level
        elif isinstance(a, (list, tuple)):
            for e in a:
                if isinstance(e, BatchedTensor) and e._level > top:
                    top = e._level
    for a in kwargs.values():
        if isinstance(a, BatchedTensor) and a._level > top:
            top = a._level
    return top


class _Handler:
    """How one op is batched: a rule, the op's decomposition, or the per-example fallback."""

    __slots__ = ("decomposition", "kind", "mutates", "rule")

    def __init__(self, kind: str, rule: Any, decomposition: Any, mutates: bool) -> None:
        self.kind = kind
        self.rule = rule
        self.decomposition = decomposition
        self.mutates = mutates


_HANDLERS: dict[Any, _Handler] = {}
# See NOTE [no decomposition for fused attention] in _rules/attention.py.
_NO_DECOMPOSITION = {
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
    "aten::_efficient_attention_forward",
    "aten::_flash_attention_forward",
}
# Which path each op took (rule / decomposition / fallback): the OpInfo sweep reports it.
PATH_USED: dict[Any, str] = {}
_FALLBACK = {"mode": "warn"}
_WARNED: set[Any] = set()


def set_vmap_fallback(mode: str) -> str:
    """Choose what happens when vmap meets an op without a batching rule or decomposition.

    Args:
        mode: ``"warn"`` (default: run a slow per-example loop and warn once per op), ``"silent"`` (loop
            without warning) or ``"error"`` (raise ``NotImplementedError``; tests use this).

    Returns:
        The previous mode, so that callers can restore it.

    Example:
        >>> from loom.func import set_vmap_fallback
        >>> previous = set_vmap_fallback("error")
        >>> _ = set_vmap_fallback(previous)
    """
    if mode not in ("warn", "silent", "error"):
        raise ValueError(f"set_vmap_fallback: mode must be 'warn', 'silent' or 'error', got {mode!r}")
    previous = _FALLBACK["mode"]
    _FALLBACK["mode"] = mode
    return previous


def _mutates_first_arg(func: Any) -> bool:
    schema = func._schema
    if not schema.arguments:
        return False
    info = schema.arguments[0].alias_info
    return bool(info is not None and info.is_write)


def _resolve(func: Any) -> _Handler:
    rule = RULES.get(func)
    mutates = _mutates_first_arg(func)
    if rule is None and torch.Tag.pointwise in func.tags:
        from ._rules.pointwise import pointwise_rule

        rule = pointwise_rule(func)
    if rule is None and torch.Tag.inplace_view in func.tags:
        rule = _inplace_view_rule(func)
    if rule is not None:
        handler = _Handler("rule", rule, None, mutates)
    elif torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
        # Reached below autograd (an op called from inside a rule): run its composite kernel.
        handler = _Handler("decomposition", None, func.decompose, mutates)
    else:
        from torch._decomp import decomposition_table

        decomposition = None if func.name() in _NO_DECOMPOSITION else decomposition_table.get(func)
        kind = "decomposition" if decomposition is not None else "fallback"
        handler = _Handler(kind, None, decomposition, mutates)
    _HANDLERS[func] = handler
    PATH_USED[func] = handler.kind
    return handler


def _inplace_view_rule(func: Any) -> Any:
    """``squeeze_`` and friends: re-view the physical tensor, then fix the wrapper's own sizes and strides.

    NOTE [in-place view ops]: the wrapper's metadata lives in its C++ TensorImpl; running the op on the
    wrapper with Python dispatch disabled updates exactly that, since these kernels only touch metadata.
    """
    packet = getattr(aten, func._schema.name.split("::")[1].rstrip("_"))
    names = [a.name for a in func._schema.arguments]
    outplace = None
    for overload in packet.overloads():
        candidate = getattr(packet, overload)
        if [a.name for a in candidate._schema.arguments] == names:
            outplace = candidate
            break
    if outplace is None:
        return None
    handler = _HANDLERS.get(outplace) or _resolve(outplace)
    if handler.rule is None:
        return None

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        out, out_bdim = handler.rule(args, bdims, **kwargs)
        return _InplaceView(out if out_bdim in (0, None) else out.movedim(out_bdim, 0)), 0

    return rule


class _InplaceView:
    __slots__ = ("value",)

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


def forget_handler(func: Any) -> None:
    """Drop the cached handler of ``func`` (after a new rule is registered)."""
    _HANDLERS.pop(func, None)


def dispatch(func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """Run ``func`` on arguments that include BatchedTensors: the highest level among them handles it."""
    top = _top_level(args, kwargs)
    level = LIVE_VMAP.get(top)
    if level is None:
        raise RuntimeError(
            f"vmap: {func} got a BatchedTensor of a vmap level that has already exited (level {top}). "
            "A batched tensor escaped its vmap, e.g. through a closure, a global or a non-tensor output."
        )
    handler = _HANDLERS.get(func) or _resolve(func)
    if handler.kind != "rule":
        if handler.kind == "decomposition":
            try:
                return handler.decomposition(*args, **kwargs)
            except _VmapUnsupportedError:
                handler.kind = "fallback"
                PATH_USED[func] = "fallback"
        return _fallback(func, level, args, kwargs, handler.mutates)
    phys, bdims, reenter = _unwrap(args, top)
    for k, v in kwargs.items():
        if isinstance(v, BatchedTensor) and v._level == top:
            raise NotImplementedError(f"{level.call}: {func} got a batched tensor as keyword argument {k!r}")
    if handler.mutates:
        _check_inplace(func, level, bdims)
    _table.DISPATCHING.append(level)
    try:
        if (reenter and torch.is_grad_enabled()) or _fwad._current_level >= 0:
            with _restore_python_tls(), torch._C._ForceDispatchKeyGuard(*level.dispatch_keys):
                out, out_bdims = handler.rule(phys, bdims, **kwargs)
        else:
            out, out_bdims = handler.rule(phys, bdims, **kwargs)
    finally:
        _table.DISPATCHING.pop()
    if out is NotImplemented:
        return _fallback(func, level, args, kwargs, handler.mutates)
    if handler.mutates:
        if isinstance(out, _InplaceView):
            self = args[0]
            self._value = out.value
            with no_dispatch():
                func(self, *args[1:], **kwargs)
        return args[0]
    return wrap_output(out, out_bdims, top)


def _unwrap(args: Any, top: int) -> tuple[list[Any], list[Any], bool]:
    phys: list[Any] = []
    bdims: list[Any] = []
    needs_grad = False
    for a in args:
        if isinstance(a, BatchedTensor):
            if a._level == top:
                v = a._value
                phys.append(v)
                bdims.append(0)
                needs_grad = needs_grad or v.requires_grad
            else:
                phys.append(a)
                bdims.append(None)
                needs_grad = needs_grad or a.requires_grad
        elif isinstance(a, (list, tuple)) and a and any(isinstance(e, torch.Tensor) for e in a):
            vals: list[Any] = []
            bds: list[Any] = []
            for e in a:
                if isinstance(e, BatchedTensor) and e._level == top:
                    vals.append(e._value)
                    bds.append(0)
                    needs_grad = needs_grad or e._value.requires_grad
                else:
                    vals.append(e)
                    bds.append(None)
                    needs_grad = needs_grad or (isinstance(e, torch.Tensor) and e.requires_grad)
            phys.append(vals)
            bdims.append(tuple(bds))
        else:
            phys.append(a)
            bdims.append(None)
            if not needs_grad and isinstance(a, torch.Tensor) and a.requires_grad:
                needs_grad = not _only_inner_levels_differentiate(a, top)
    return phys, bdims, needs_grad


# NOTE [physical ops of inner levels]
# A grad level entered inside a vmap, vmap(grad(f)), records the wrapper ops (see NOTE [re-entering
# autograd]); its unbatched inputs are plain leaf aliases that require grad for it alone. Re-entering
# autograd for them would record a second, physical graph that nobody differentiates, costing dispatch time
# and keeping its saved tensors alive as long as the outputs. So an unbatched input requiring grad counts
# only when something outside the vmap may differentiate it: it is not a leaf alias of a level newer than
# the vmap (nor a view/transpose one step from one). Anything less certain re-enters, which is always right.


def _only_inner_levels_differentiate(t: torch.Tensor, top: int) -> bool:
    fn = t.grad_fn
    if fn is not None:
        nexts = fn.next_functions
        if len(nexts) != 1 or nexts[0][0] is None or not hasattr(nexts[0][0], "variable"):
            return False
        t = nexts[0][0].variable
    return bool(getattr(t, ALIAS_LEVEL_ATTR, 0) > top)


def wrap_output(out: Any, out_bdims: Any, level: int) -> Any:
    """Wrap a rule's physical output(s) as BatchedTensors of ``level`` (``None`` bdims stay unbatched)."""
    if isinstance(out, torch.Tensor):
        if out_bdims is None:
            return out
        if out_bdims != 0:
            out = out.movedim(out_bdims, 0)
        return BatchedTensor(out, level)
    if isinstance(out, (tuple, list)):
        if not isinstance(out_bdims, (tuple, list)):
            out_bdims = [out_bdims] * len(out)
        return type(out)(wrap_output(o, b, level) for o, b in zip(out, out_bdims))
    return out


class _VmapUnsupportedError(RuntimeError):
    """An op pattern vmap cannot batch (in-place write into an unbatched tensor, .item(), ...)."""


def _check_inplace(func: Any, level: VmapLevel, bdims: list[Any]) -> None:
    if bdims[0] is not None:
        return
    for b in bdims[1:]:
        if b is not None and (not isinstance(b, tuple) or any(x is not None for x in b)):
            raise _VmapUnsupportedError(
                f"{level.call}: in-place operation {func} would write a batched value into a tensor that is "
                "not batched at this vmap level. Use the out-of-place version, or batch the tensor being "
                "written to (e.g. pass it through vmap's inputs)."
            )


_NO_FALLBACK = {aten.as_strided.default, aten.as_strided_.default}


def _fallback(func: Any, level: VmapLevel, args: Any, kwargs: dict[str, Any], mutates: bool) -> Any:
    """Run ``func`` once per example and stack the results: correct for most ops, but slow."""
    mode = _FALLBACK["mode"]
    hint = "see loom.func.register_batch_rule"
    if func in _NO_FALLBACK:
        raise NotImplementedError(
            f"{level.call}: no batching rule for {func}, and a per-example loop would be wrong "
            "(as_strided uses absolute storage offsets); " + hint
        )
    if torch.Tag.nondeterministic_seeded in func.tags and level.randomness != "different":
        if level.randomness == "error":
            from ._rules.random import random_error

            random_error(func)
        raise NotImplementedError(f"{level.call}: {func} has no batching rule for randomness='same'")
    if mode == "error":
        raise NotImplementedError(f"vmap: no batching rule for {func}; {hint}")
    if mode == "warn" and func not in _WARNED:
        _WARNED.add(func)
        warnings.warn(
            f"vmap: no batching rule for {func}: using a slow per-example loop (warned once per op); {hint}, "
            "or loom.func.set_vmap_fallback('error') to make this an error",
            UserWarning,
            stacklevel=3,
        )
    top = level.id
    phys, bdims, reenter = _unwrap(args, top)
    if mutates:
        _check_inplace(func, level, bdims)
    results = []
    use_guard = (reenter and torch.is_grad_enabled()) or _fwad._current_level >= 0
    for b in range(level.batch_size):
        args_b = [_select(a, bd, b) for a, bd in zip(phys, bdims)]
        if use_guard:
            with _restore_python_tls(), torch._C._ForceDispatchKeyGuard(*level.dispatch_keys):
                results.append(func(*args_b, **kwargs))
        else:
            results.append(func(*args_b, **kwargs))
    if mutates:
        return args[0]
    return wrap_output(_stack_results(func, level, results), 0, top)


def _select(a: Any, bdim: Any, b: int) -> Any:
    if bdim is None:
        return a
    if isinstance(bdim, tuple):
        return [e if bd is None else e.select(bd, b) for e, bd in zip(a, bdim)]
    return a.select(bdim, b)


def _stack_results(func: Any, level: VmapLevel, results: list[Any]) -> Any:
    first = results[0]
    if isinstance(first, torch.Tensor):
        shapes = {r.shape for r in results}
        if len(shapes) > 1:
            raise RuntimeError(
                f"{level.call}: {func} returned outputs of different shapes for different examples "
                f"({sorted(tuple(s) for s in shapes)}): vmap needs the same output shape for every example"
            )
        return torch.stack(results)
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_results(func, level, list(rs)) for rs in zip(*results))
    if all(r == first for r in results):
        return first
    raise RuntimeError(f"{level.call}: {func} returns a non-tensor value that differs between examples")
