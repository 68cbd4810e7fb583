"""RNN layers and cells written with plain ops (linear, sigmoid, tanh, stack) for vmap on CUDA.

NOTE [RNNs on CUDA under vmap]: on CUDA, ``torch.lstm`` and friends run cuDNN (``_cudnn_rnn``, whose
backward sums weight gradients over the batch) or, without cuDNN, fused cell kernels
(``_thnn_fused_lstm_cell``) with a device-specific workspace. Neither has a batching rule; these functions
replace the whole call instead, with ops that all have rules, so per-example weights and per-example
gradients (and gradients of gradients) come out of ordinary autograd. Semantics follow torch's: gate order
i, f, g, o (LSTM) and r, z, n (GRU, with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), weights per
layer and direction as ``w_ih, w_hh[, b_ih, b_hh][, w_hr]``, dropout between layers in training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _lstm_step(gates: torch.Tensor, h: Any, w_hh: torch.Tensor, b_hh: Any, w_hr: Any) -> tuple[Any, Any]:
    hx, cx = h
    i, f, g, o = (gates + F.linear(hx, w_hh, b_hh)).chunk(4, dim=-1)
    cy = torch.sigmoid(f) * cx + torch.sigmoid(i) * torch.tanh(g)
    hy = torch.sigmoid(o) * torch.tanh(cy)
    if w_hr is not None:
        hy = F.linear(hy, w_hr)
    return (hy, cy), hy


def _gru_step(gates: torch.Tensor, h: Any, w_hh: torch.Tensor, b_hh: Any, w_hr: Any) -> tuple[Any, Any]:
    i_r, i_z, i_n = gates.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    hy = (1 - z) * n + z * h
    return hy, hy


def _tanh_step(gates: torch.Tensor, h: Any, w_hh: torch.Tensor, b_hh: Any, w_hr: Any) -> tuple[Any, Any]:
    hy = torch.tanh(gates + F.linear(h, w_hh, b_hh))
    return hy, hy


def _relu_step(gates: torch.Tensor, h: Any, w_hh: torch.Tensor, b_hh: Any, w_hr: Any) -> tuple[Any, Any]:
    hy = torch.relu(gates + F.linear(h, w_hh, b_hh))
    return hy, hy


_STEPS = {"lstm": _lstm_step, "gru": _gru_step, "rnn_tanh": _tanh_step, "rnn_relu": _relu_step}


def _unpack(weights: list[Any], has_biases: bool) -> tuple[Any, Any, Any, Any, Any]:
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_biases else (None, None)
    w_hr = weights[4 if has_biases else 2] if len(weights) > 2 + 2 * has_biases else None
    return w_ih, w_hh, b_ih, b_hh, w_hr


def rnn(kind: str, x: torch.Tensor, hx: Any, params: list[Any], options: tuple[Any, ...]) -> tuple[Any, ...]:
    """``torch.<kind>(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)``."""
    has_biases, num_layers, dropout, train, bidirectional, batch_first = options
    step = _STEPS[kind]
    directions = 2 if bidirectional else 1
    per = len(params) // (num_layers * directions)
    if batch_first:
        x = x.transpose(0, 1)
    states = [hx[0], hx[1]] if kind == "lstm" else [hx]
    finals: list[list[Any]] = [[] for _ in states]
    for layer in range(num_layers):
        outputs = []
        for d in range(directions):
            k = layer * directions + d
            w_ih, w_hh, b_ih, b_hh, w_hr = _unpack(params[k * per : (k + 1) * per], has_biases)
            gates = F.linear(x, w_ih, b_ih)
            h: Any = (states[0][k], states[1][k]) if kind == "lstm" else states[0][k]
            steps = range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])
            outs: list[Any] = [None] * x.shape[0]
            for t in steps:
                h, outs[t] = step(gates[t], h, w_hh, b_hh, w_hr)
            outputs.append(torch.stack(outs))
            for i, s in enumerate(h if kind == "lstm" else (h,)):
                finals[i].append(s)
        x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if dropout > 0 and train and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    out = x.transpose(0, 1) if batch_first else x
    return (out, *[torch.stack(f) for f in finals])


def cell(
    kind: str, x: torch.Tensor, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None
) -> Any:
    """``torch.<kind>_cell(x, hx, w_ih, w_hh, b_ih, b_hh)``: one step."""
    h = (hx[0], hx[1]) if kind == "lstm" else hx
    state, _ = _STEPS[kind](F.linear(x, w_ih, b_ih), h, w_hh, b_hh, None)
    return state
