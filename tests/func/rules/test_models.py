"""Per-sample gradients of small models, end to end, with the per-example fallback turned into an error."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
import torch.nn as nn
import torch.nn.functional as F

import loom.func as lf

from .._checks import assert_trees_close
from ._rule_checks import assert_rule_used


class _Encoder(nn.Module):
    """Embedding + one post-norm transformer encoder layer (LayerNorm, attention, MLP) + a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 8, padding_idx=0)
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.emb(tokens)).mean(1))


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # torch.func's, on attention
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_transformer_encoder_per_sample_grads(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = _Encoder().to(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    tokens = torch.randint(11, (5, 6))
    tokens[:, -1] = 0  # the padding row gets no gradient
    targets = torch.randint(3, (5,))

    def loss(p: dict[str, torch.Tensor], t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(tf.functional_call(model, p, (t.unsqueeze(0),)), y.unsqueeze(0))

    ours = lf.vmap(lf.grad(loss), (None, 0, 0))(params, tokens, targets)
    loop = [tf.grad(loss)(params, tokens[i], targets[i]) for i in range(5)]
    tol = {} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-4}
    assert_trees_close(ours, {k: torch.stack([g[k] for g in loop]) for k in params}, **tol)
    assert_trees_close(ours, tf.vmap(tf.grad(loss), (None, 0, 0))(params, tokens, targets), **tol)


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # torch.func's, on the LSTM
@pytest.mark.parametrize("batch_first", [True, False])
def test_lstm_per_sample_grads(batch_first: bool) -> None:
    """float32 on CPU: torch runs each layer through mkldnn_rnn_layer (the loop below runs the real kernel)."""
    torch.manual_seed(0)
    emb = nn.Embedding(11, 4)
    lstm = nn.LSTM(4, 5, num_layers=2, batch_first=batch_first, bidirectional=True)
    head = nn.Linear(10, 3)
    model = nn.ModuleDict({"emb": emb, "lstm": lstm, "head": head})
    params = {k: v.detach() for k, v in model.named_parameters()}
    tokens = torch.randint(11, (4, 2, 6))  # per example: 2 sequences of 6 tokens
    targets = torch.randint(3, (4, 2))

    def loss(p: dict[str, torch.Tensor], t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = tf.functional_call(emb, {"weight": p["emb.weight"]}, (t if batch_first else t.T,))
        lstm_p = {k[5:]: v for k, v in p.items() if k.startswith("lstm.")}
        out, (h, c) = tf.functional_call(lstm, lstm_p, (x,))
        last = out[:, -1] if batch_first else out[-1]
        head_p = {k[5:]: v for k, v in p.items() if k.startswith("head.")}
        logits = tf.functional_call(head, head_p, (last,))
        return F.cross_entropy(logits, y) + h.pow(2).mean() + c.pow(2).mean()

    ours = lf.vmap(lf.grad(loss), (None, 0, 0))(params, tokens, targets)
    loop = [tf.grad(loss)(params, tokens[i], targets[i]) for i in range(4)]
    tol = {"atol": 1e-5, "rtol": 1e-4}
    assert_trees_close(ours, {k: torch.stack([g[k] for g in loop]) for k in params}, **tol)
    assert_trees_close(ours, tf.vmap(tf.grad(loss), (None, 0, 0))(params, tokens, targets), **tol)
    assert_rule_used(
        torch.ops.aten.mkldnn_rnn_layer.default, torch.ops.aten.mkldnn_rnn_layer_backward.default
    )


def test_lstm_batched_weights_and_states() -> None:
    """Per-example weights and initial states (an ensemble), forward and vjp, against a per-example loop."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True)
    params = {
        k: torch.stack([v.detach() + 0.1 * torch.randn_like(v) for _ in range(3)])
        for k, v in lstm.named_parameters()
    }
    x, h0, c0 = torch.randn(3, 2, 5, 3), torch.randn(3, 1, 2, 4), torch.randn(3, 1, 2, 4)

    def run(p: dict[str, torch.Tensor], a: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out, (hn, cn) = tf.functional_call(lstm, p, (a, (h, c)))
        return out.sum() + hn.sum() + cn.pow(2).sum()

    ours = lf.vmap(lf.grad(run, argnums=(0, 1, 2, 3)))(params, x, h0, c0)
    loop = [
        tf.grad(run, argnums=(0, 1, 2, 3))({k: v[i] for k, v in params.items()}, x[i], h0[i], c0[i])
        for i in range(3)
    ]
    expected = (
        {k: torch.stack([g[0][k] for g in loop]) for k in params},
        *[torch.stack([g[j] for g in loop]) for j in (1, 2, 3)],
    )
    assert_trees_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_lstm_without_biases_and_single_direction() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=1, bias=False)
    params = {k: v.detach() for k, v in lstm.named_parameters()}
    x = torch.randn(3, 5, 2, 3)

    def run(p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        return tf.functional_call(lstm, p, (a,))[0].pow(2).sum()

    ours = lf.vmap(lf.grad(run), (None, 0))(params, x)
    loop = [tf.grad(run)(params, x[i]) for i in range(3)]
    assert_trees_close(ours, {k: torch.stack([g[k] for g in loop]) for k in params}, atol=1e-5, rtol=1e-4)
