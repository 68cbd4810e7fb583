"""LSTM, GRU and RNN (layers and cells, float32 and float64) under vmap: per-example gradients, ensembles.

torch.func's own vmap fails on these whenever the initial state is shared (nn.LSTM's default zeros) and torch
does not take the mkldnn LSTM path ("output with shape [2, 5] doesn't match the broadcast shape [4, 2, 5]"),
so the oracle there is a per-example loop of torch.func.grad; with per-example states torch.func's vmap is
compared as well. See NOTE [RNN states are batched first] in loom.func._rules.rnn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.func as tf
import torch.nn as nn

import loom.func as lf
from loom.func._rules import _rnn_ops
from loom.func._rules import rnn as rnn_rules

from .._checks import assert_trees_close

KINDS = ["LSTM", "GRU", "RNN"]
DTYPES = [torch.float32, torch.float64]


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return {} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-4}


def _stack(grads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([g[k] for g in grads]) for k in grads[0]}


def _state_loss(state: Any) -> torch.Tensor:
    return sum(s.pow(2).sum() for s in state) if isinstance(state, tuple) else state.pow(2).sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [True, False])
def test_per_sample_grads_shared_state(kind: str, dtype: torch.dtype, batch_first: bool) -> None:
    torch.manual_seed(0)
    model = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=batch_first).to(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(4, 2, 6, 3, dtype=dtype)

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        out, state = tf.functional_call(model, p, (a if batch_first else a.transpose(0, 1),))
        return out.sin().sum() + _state_loss(state)

    ours = lf.vmap(lf.grad(loss), in_dims=(None, 0))(params, x)
    assert_trees_close(ours, _stack([tf.grad(loss)(params, e) for e in x]), **_tol(dtype))


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # torch.func's, on the LSTM
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_per_sample_grads_per_example_state(kind: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = getattr(nn, kind)(3, 4, num_layers=2, batch_first=True).to(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(3, 2, 5, 3, dtype=dtype)
    h0 = torch.randn(3, 2, 2, 4, dtype=dtype)
    c0 = torch.randn(3, 2, 2, 4, dtype=dtype)

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        state = (h, c) if kind == "LSTM" else h
        out, new_state = tf.functional_call(model, p, (a, state))
        return out.pow(2).sum() + _state_loss(new_state)

    grad = lf.grad(loss, argnums=(0, 1, 2, 3))
    ours = lf.vmap(grad, in_dims=(None, 0, 0, 0))(params, x, h0, c0)
    loop = [tf.grad(loss, argnums=(0, 1, 2, 3))(params, x[i], h0[i], c0[i]) for i in range(3)]
    expected = (_stack([g[0] for g in loop]), *[torch.stack([g[j] for g in loop]) for j in (1, 2, 3)])
    assert_trees_close(ours, expected, **_tol(dtype))
    theirs = tf.vmap(tf.grad(loss, argnums=(0, 1, 2, 3)), in_dims=(None, 0, 0, 0))(params, x, h0, c0)
    assert_trees_close(ours, theirs, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_ensemble_shared_input(kind: str, dtype: torch.dtype) -> None:
    """Per-example weights, one input for all: the input is the tensor that gets a batch dim."""
    torch.manual_seed(0)
    model = getattr(nn, kind)(3, 4, batch_first=True).to(dtype)
    params = {
        k: torch.stack([v.detach() + 0.1 * torch.randn_like(v) for _ in range(3)])
        for k, v in model.named_parameters()
    }
    x = torch.randn(2, 5, 3, dtype=dtype)

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        out, state = tf.functional_call(model, p, (a,))
        return out.tanh().sum() + _state_loss(state)

    ours = lf.vmap(lf.grad(loss), in_dims=(0, None))(params, x)
    loop = [tf.grad(loss)({k: v[i] for k, v in params.items()}, x) for i in range(3)]
    assert_trees_close(ours, _stack(loop), **_tol(dtype))
    assert_trees_close(
        lf.vmap(loss, in_dims=(0, None))(params, x),
        torch.stack([loss({k: v[i] for k, v in params.items()}, x) for i in range(3)]),
        **_tol(dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_cells(kind: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    cell = getattr(nn, f"{kind}Cell")(3, 4).to(dtype)
    params = {k: v.detach() for k, v in cell.named_parameters()}
    x = torch.randn(4, 5, 2, 3, dtype=dtype)  # per example: 5 steps of a batch of 2

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        state = None
        total = a.new_zeros(())
        for step in a:
            state = tf.functional_call(cell, p, (step, state))
            h = state[0] if isinstance(state, tuple) else state
            total = total + h.sin().sum()
        return total

    ours = lf.vmap(lf.grad(loss), in_dims=(None, 0))(params, x)
    assert_trees_close(ours, _stack([tf.grad(loss)(params, e) for e in x]), **_tol(dtype))


def test_float64_lstm_vmap_of_vjp_and_dropout_between_layers() -> None:
    """vmap(vjp) of a float64 LSTM against torch.func (per-example states), and inter-layer dropout in eval."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5).double().eval()
    x, h0, c0 = (
        torch.randn(3, 5, 2, 3).double(),
        torch.randn(3, 2, 2, 4).double(),
        torch.randn(3, 2, 2, 4).double(),
    )

    def run(lib: Any) -> Any:
        def per_example(a: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Any:
            out, fn = lib.vjp(lambda a_, h_, c_: lstm(a_, (h_, c_))[0], a, h, c)
            return out, fn(torch.cos(out))

        return per_example

    assert_trees_close(lf.vmap(run(lf))(x, h0, c0), tf.vmap(run(tf))(x, h0, c0))


# ----------------------------------------------------------------------------------------------------------
# The plain-op RNNs used on CUDA (NOTE [RNNs on CUDA under vmap]): checked on CPU against torch's kernels,
# and under vmap with the CPU path switched to them; the CUDA tests run them for real (skipped without CUDA).


def _module(kind: str, **options: Any) -> nn.Module:
    return getattr(nn, kind)(3, 4, **options).double()


MODULE_OPTIONS = [
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"num_layers": 3, "bias": False},
    {"num_layers": 1, "bidirectional": True},
]


@pytest.mark.parametrize("options", MODULE_OPTIONS, ids=str)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "RNN_relu", "LSTM_proj"])
def test_plain_op_rnn_matches_torch(kind: str, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    extra = (
        {"nonlinearity": "relu"} if kind == "RNN_relu" else {"proj_size": 2} if kind == "LSTM_proj" else {}
    )
    model = _module(kind.split("_")[0], **options, **extra)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    name = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh", "RNN_relu": "rnn_relu", "LSTM_proj": "lstm"}[
        kind
    ]
    out, state = model(x)
    flat = list(model._flat_weights)
    opts = (options.get("bias", True), model.num_layers, 0.0, False, model.bidirectional, model.batch_first)
    hx0: Any = [torch.zeros_like(s) for s in state] if name == "lstm" else torch.zeros_like(state)
    ours = _rnn_ops.rnn(name, x, hx0, flat, opts)
    expected = (out, *state) if name == "lstm" else (out, state)
    assert_trees_close(tuple(ours), expected)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_plain_op_cells_match_torch(kind: str) -> None:
    torch.manual_seed(0)
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    w_ih, w_hh = torch.randn(gates * 4, 3).double(), torch.randn(gates * 4, 4).double()
    b_ih, b_hh = torch.randn(gates * 4).double(), torch.randn(gates * 4).double()
    x, h, c = torch.randn(2, 3).double(), torch.randn(2, 4).double(), torch.randn(2, 4).double()
    hx: Any = [h, c] if kind == "lstm" else h
    expected = getattr(torch, f"{kind}_cell")(x, hx, w_ih, w_hh, b_ih, b_hh)
    assert_trees_close(_rnn_ops.cell(kind, x, hx, w_ih, w_hh, b_ih, b_hh), expected)
    assert_trees_close(
        _rnn_ops.cell(kind, x, hx, w_ih, w_hh), getattr(torch, f"{kind}_cell")(x, hx, w_ih, w_hh)
    )


@pytest.fixture
def plain_ops_on_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    calls = []
    for name in ("rnn", "cell"):
        original = getattr(_rnn_ops, name)
        monkeypatch.setattr(_rnn_ops, name, lambda *a, _f=original: calls.append(1) or _f(*a))
    monkeypatch.setattr(rnn_rules, "_on_cpu", lambda args: False)
    yield
    assert calls, "the plain-op RNN was not used"


@pytest.mark.usefixtures("plain_ops_on_cpu")
@pytest.mark.parametrize("kind", KINDS)
def test_plain_op_rnn_under_vmap(kind: str) -> None:
    test_per_sample_grads_shared_state(kind, torch.float64, True)
    test_per_sample_grads_per_example_state(kind, torch.float64)
    test_ensemble_shared_input(kind, torch.float64)
    test_cells(kind, torch.float64)


@pytest.mark.usefixtures("plain_ops_on_cpu")
def test_plain_op_lstm_grad_of_grad_and_dropout() -> None:
    """Plain ops are differentiable twice; dropout between layers follows vmap's randomness."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2).double()
    params = {k: v.detach() for k, v in lstm.named_parameters()}
    x = torch.randn(3, 5, 2, 3).double()

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        return tf.functional_call(lstm, p, (a,))[0].pow(2).sum()

    def grad_norm(lib: Any) -> Any:
        return lambda a: lib.grad(
            lambda a_: sum(g.pow(2).sum() for g in lib.grad(loss)(params, a_).values())
        )(a)

    ours = lf.vmap(grad_norm(lf))(x)
    assert_trees_close(ours, torch.stack([grad_norm(tf)(e) for e in x]))
    lstm.dropout = 0.5
    with pytest.raises(RuntimeError, match="randomness"):
        lf.vmap(loss, in_dims=(None, 0))(params, x)
    out = lf.vmap(loss, in_dims=(None, 0), randomness="different")(params, x.expand(3, -1, -1, -1))
    assert len(set(out.tolist())) == 3


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _autograd_grads(
    fn: Any, params: dict[str, torch.Tensor], *rest: torch.Tensor, wrt_rest: tuple[int, ...] = ()
) -> Any:
    """One example's gradients by plain autograd on cuDNN: the reference on CUDA.

    Not torch.func.grad: its wrapped weights have no data pointers, which an RNN re-flattening swapped-in
    weights for cuDNN reads (torch.func fails there; see NOTE [RNN weights re-flattened under vmap]).
    """
    p = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    extra = [r.detach().clone().requires_grad_() if i in wrt_rest else r for i, r in enumerate(rest)]
    leaves = [*p.values(), *(extra[i] for i in wrt_rest)]
    # cuDNN runs float32 RNNs in TF32 by default; the plain-op path under vmap runs full float32 matmuls
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        grads = torch.autograd.grad(fn(p, *extra), leaves, allow_unused=True)
    grads = tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves))
    by_name = dict(zip(p, grads[: len(p)]))
    return (by_name, *grads[len(p) :]) if wrt_rest else by_name


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_per_sample_grads(kind: str, dtype: torch.dtype) -> None:
    """cuDNN's RNN under vmap(grad): plain-op RNNs, against a per-example loop on cuDNN itself."""
    torch.manual_seed(0)
    model = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).to("cuda", dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(4, 2, 6, 3, dtype=dtype, device="cuda")
    h0 = torch.randn(4, 4, 2, 5, dtype=dtype, device="cuda")

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        out, state = tf.functional_call(model, p, (a,))
        return out.sin().sum() + _state_loss(state)

    def loss_h(p: dict[str, torch.Tensor], a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out, state = tf.functional_call(model, p, (a, (h, h) if kind == "LSTM" else h))
        return out.sin().sum() + _state_loss(state)

    tol = {"atol": 1e-4, "rtol": 1e-3} if dtype == torch.float32 else {}
    ours = lf.vmap(lf.grad(loss), in_dims=(None, 0))(params, x)
    assert_trees_close(ours, _stack([_autograd_grads(loss, params, e) for e in x]), **tol)
    ours = lf.vmap(lf.grad(loss_h, argnums=(0, 2)), in_dims=(None, 0, 0))(params, x, h0)
    loop = [_autograd_grads(loss_h, params, x[i], h0[i], wrt_rest=(1,)) for i in range(4)]
    assert_trees_close(ours, (_stack([g[0] for g in loop]), torch.stack([g[1] for g in loop])), **tol)
    ensemble = {k: torch.stack([v, v * 0.9]) for k, v in params.items()}
    ours = lf.vmap(lf.grad(loss), in_dims=(0, None))(ensemble, x[0])
    loop = [_autograd_grads(loss, {k: v[i] for k, v in ensemble.items()}, x[0]) for i in range(2)]
    assert_trees_close(ours, _stack(loop), **tol)


@needs_cuda
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_cells(kind: str) -> None:
    torch.manual_seed(0)
    cell = getattr(nn, f"{kind}Cell")(3, 4).to("cuda")
    params = {k: v.detach() for k, v in cell.named_parameters()}
    x = torch.randn(4, 5, 2, 3, device="cuda")

    def loss(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        state = None
        total = a.new_zeros(())
        for step in a:
            state = tf.functional_call(cell, p, (step, state))
            total = total + (state[0] if isinstance(state, tuple) else state).sin().sum()
        return total

    ours = lf.vmap(lf.grad(loss), in_dims=(None, 0))(params, x)
    assert_trees_close(ours, _stack([_autograd_grads(loss, params, e) for e in x]), atol=1e-4, rtol=1e-3)


def test_rnn_weights_reflattened_under_vmap_read_physical_pointers() -> None:
    # On CUDA an RNN whose weights were swapped (functional_call) reads their data pointers and packs them
    # for cuDNN in forward; under vmap the pointers are the physical tensors' and the packing is skipped.
    # Both calls are made here as flatten_parameters makes them on CUDA (on CPU it returns early).
    weights = [torch.randn(4, 20, 3), torch.randn(4, 20, 5), torch.randn(4, 20), torch.randn(4, 20)]

    def reflatten(*ws: torch.Tensor) -> torch.Tensor:
        pointers = {w.data_ptr() for w in ws}
        assert len(pointers) == len(ws)
        assert torch._cudnn_rnn_flatten_weight(list(ws), 4, 3, 2, 5, 0, 1, True, False) is None
        return ws[0].sum()

    assert_trees_close(lf.vmap(reflatten)(*weights), weights[0].sum((1, 2)))
    # outside vmap the real op runs (and, on this CPU build, refuses)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            torch._cudnn_rnn_flatten_weight([w[0] for w in weights], 4, 3, 2, 5, 0, 1, True, False)
