"""Recurrent layers under vmap: states batched before the composite runs; CPU LSTM layers (mkldnn).

NOTE [RNN states are batched first]: ``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` (and their cells) are
composites; outside the mkldnn LSTM path they compute ``linear(h, w_hh)`` and add the input's gates to it in
place. With per-example inputs but a shared initial state (nn.LSTM's default zeros) and shared weights, the
first step's hidden gates are unbatched and the in-place add is refused. A torch-function rule gives the
input and the states a batch dim (a broadcast add of batched zeros: autograd-friendly, no copy of the
weights) whenever anything else is batched at the level; the composite then runs batched throughout, on
every dtype. The mkldnn rules below serve float32 CPU LSTMs. Off the CPU (cuDNN, fused CUDA cells) the rule
runs the whole call with plain ops instead: see NOTE [RNNs on CUDA under vmap] in ``_rnn_ops``. Packed
sequences on CUDA are left to the native call.

torch's CPU LSTM (float32/bfloat16) runs each layer and direction through ``mkldnn_rnn_layer``: time-major
input ``(L, N, I)``, states ``(N, H)``, gate order i, f, g, o. Its backward sums weight gradients over N, so
the batch cannot be folded into N. Both rules here run the recurrence with plain batched ops instead (one
batched matmul per time step for all examples, per-example weights allowed); the backward recomputes the
forward under autograd and differentiates it, returning per-example weight gradients.

NOTE [LSTM backward is not differentiable again]: torch's own mkldnn LSTM backward has no derivative, and
the recomputation here is cut from any outer autograd graph, so a backward that outer autograd is recording
(grad of a per-example gradient) is refused instead of silently giving zero.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _rnn_ops
from ._table import FUNCTION_RULES, batch_rule, batch_size_of, current_level, materialize, to_front

aten = torch.ops.aten
_restore_python_tls: Any = torch._C._RestorePythonTLSSnapshot  # type: ignore[attr-defined]
_LSTM_MODE = 2  # ideep::rnn_kind::LSTM


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` for x (B, ..., K): ``w`` shared (G, K) or per example (B, G, K)."""
    if w.dim() == 2:
        return x @ w.T
    flat = x.reshape(x.shape[0], -1, x.shape[-1]) @ w.transpose(1, 2)
    return flat.reshape(*x.shape[:-1], w.shape[1])


def _layer(
    x: torch.Tensor,
    weights: list[torch.Tensor],
    h: torch.Tensor,
    c: torch.Tensor,
    reverse: bool,
    has_biases: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer: x (B, L, N, I), h and c (B, N, H), weights shared or (B, ...); returns output, h, c."""
    w_ih, w_hh, b_ih, b_hh = weights
    pre = _linear(x, w_ih)
    if has_biases:
        bias = b_ih + b_hh
        pre = pre + (bias if bias.dim() == 1 else bias[:, None, None, :])
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs: list[torch.Tensor] = []
    for t in steps:
        gates = pre[:, t] + _linear(h, w_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs, 1), h, c


def _supported(batch_sizes: Any, mode: int) -> bool:
    return len(batch_sizes) == 0 and mode == _LSTM_MODE


@batch_rule(aten.mkldnn_rnn_layer.default)
def mkldnn_rnn_layer(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    reverse, batch_sizes, mode, _, _, has_biases = args[7:13]
    if not _supported(batch_sizes, mode):
        return NotImplemented, None
    size = batch_size_of(args, bdims)
    x, hx, cx = [materialize(args[i], bdims[i], size) for i in (0, 5, 6)]
    weights = [to_front(w, b) for w, b in zip(args[1:5], bdims[1:5])]  # shared weights stay 2-D
    out, hy, cy = _layer(x, weights, hx, cx, bool(reverse), bool(has_biases))
    # The workspace is the kernel's own scratch memory; the backward rule below does not read it.
    return (out, hy, cy, x.new_empty(0)), (0, 0, 0, None)


@batch_rule(aten.mkldnn_rnn_layer_backward.default)
def mkldnn_rnn_layer_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    reverse, mode, has_biases, batch_sizes = args[13], args[14], args[17], args[20]
    if not _supported(batch_sizes, mode):
        return NotImplemented, None
    size = batch_size_of(args, bdims)
    grads_out = [None if g is None else materialize(g, b, size) for g, b in zip(args[10:13], bdims[10:13])]
    # Every input is given a batch dim, shared weights too: their per-example gradients are what is asked.
    inputs = [materialize(a, b, size) for a, b in zip(args[:7], bdims[:7])]
    if torch.is_grad_enabled() and any(t.requires_grad for t in [*inputs, *grads_out] if t is not None):
        raise NotImplementedError(
            f"{current_level().call}: differentiating an LSTM's backward again is not supported under vmap; "
            "see NOTE [LSTM backward is not differentiable again] in loom.func._rules.rnn"
        )
    leaves = [t.detach().requires_grad_() for t in inputs]
    # Rules run below autograd; re-enter it with the keys the vmap level saw (NOTE [re-entering autograd]).
    keys = current_level().dispatch_keys
    with _restore_python_tls(), torch._C._ForceDispatchKeyGuard(*keys), torch.enable_grad():
        out, hy, cy = _layer(leaves[0], leaves[1:5], leaves[5], leaves[6], bool(reverse), bool(has_biases))
        pairs = [(o, g) for o, g in zip((out, hy, cy), grads_out) if g is not None]
        grads = torch.autograd.grad(
            [o for o, _ in pairs], leaves, [g for _, g in pairs], allow_unused=True, materialize_grads=True
        )
    return tuple(grads), 0  # without biases, their (placeholder) gradients are zeros


# ----------------------------------------------------------------------------------------------------------
# torch.lstm and friends, before their composite runs. See NOTE [RNN states are batched first].


def _batched_at(t: Any, level_id: int) -> bool:
    """Whether ``t`` varies over vmap level ``level_id`` (walking nested BatchedTensors inward)."""
    from .._batched import BatchedTensor

    while isinstance(t, BatchedTensor):
        if t._level == level_id:
            return True
        if t._level < level_id:
            return False
        t = t._value
    return False


def _lift(t: Any, zeros: torch.Tensor) -> Any:
    return t + zeros.to(t.dtype) if isinstance(t, torch.Tensor) else t


def _lift_states(level: Any, args: Any) -> Any:
    """Batch the input (index 0) and the states at ``level`` if any tensor argument is batched there."""
    from .._batched import BatchedTensor

    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    tensors += [e for a in args if isinstance(a, (list, tuple)) for e in a if isinstance(e, torch.Tensor)]
    if not any(_batched_at(t, level.id) for t in tensors):
        return args
    x = args[0]
    zeros = BatchedTensor(torch.zeros(level.batch_size, dtype=x.dtype, device=x.device), level.id)
    new = list(args)
    for i in (0, 2 if _packed(args) else 1):
        a = new[i]
        if isinstance(a, (list, tuple)):
            new[i] = [e if _batched_at(e, level.id) else _lift(e, zeros) for e in a]
        elif not _batched_at(a, level.id):
            new[i] = _lift(a, zeros)
    return tuple(new)


def _packed(args: Any) -> bool:
    """Packed sequences come as (data, batch_sizes, hx, params, ...); padded ones as (input, hx, params, ...)."""
    return len(args) > 3 and isinstance(args[3], (list, tuple))


def _on_cpu(args: Any) -> bool:
    return bool(args[0].device.type == "cpu")


def _function_rule(kind: str, is_cell: bool) -> Any:
    def rule(level: Any, func: Any, args: Any, kwargs: Any) -> Any:
        if kwargs:
            return func(*args, **kwargs)
        args = _lift_states(level, args)
        if _on_cpu(args) or (not is_cell and _packed(args)):
            return func(*args)
        # See NOTE [RNNs on CUDA under vmap] in _rnn_ops.
        if is_cell:
            return _rnn_ops.cell(kind, *args)
        return _rnn_ops.rnn(kind, args[0], args[1], list(args[2]), tuple(args[3:]))

    return rule


for _kind in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
    FUNCTION_RULES[getattr(torch, _kind)] = _function_rule(_kind, False)
    FUNCTION_RULES[getattr(torch, f"{_kind}_cell")] = _function_rule(_kind, True)


# NOTE [RNN weights re-flattened under vmap]: an RNN module whose weights changed (functional_call swaps
# them in) re-flattens them for cuDNN in forward: it reads their data pointers, then packs them into one
# buffer in place. Transformed tensors have no storage of their own: a BatchedTensor's data pointer is its
# physical tensor's, and packing is skipped (the weights stay separate; forward passes them on as a list,
# to the rules above).
def _data_ptr(level: Any, func: Any, args: Any, kwargs: Any) -> Any:
    from .._batched import BatchedTensor

    t = args[0]
    while isinstance(t, BatchedTensor):
        t = t._value
    return func(t, *args[1:], **kwargs)


def _flatten_weight(level: Any, func: Any, args: Any, kwargs: Any) -> Any:
    from .._batched import BatchedTensor

    if any(isinstance(w, BatchedTensor) for w in args[0]):
        return None
    return func(*args, **kwargs)


FUNCTION_RULES[torch._C.TensorBase.data_ptr] = _data_ptr
if hasattr(torch, "_cudnn_rnn_flatten_weight"):
    FUNCTION_RULES[torch._cudnn_rnn_flatten_weight] = _flatten_weight
