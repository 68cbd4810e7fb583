"""functional_call, stack_module_state, BatchNorm under vmap and replace_all_batch_norm_modules_."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
from torch import nn

import loom.func as lf

from ._checks import assert_trees_close


def test_functional_call_matches_torch_func_and_restores_the_module() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    new = {k: torch.randn_like(v) for k, v in m.named_parameters()}
    x = torch.randn(5, 3)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert_trees_close(lf.functional_call(m, new, (x,)), tf.functional_call(m, new, (x,)))
    assert_trees_close(lf.functional_call(m, new, x), tf.functional_call(m, new, x))
    buffers = dict(m.named_buffers())
    assert_trees_close(
        lf.functional_call(m, (new, buffers), (x,)), tf.functional_call(m, (new, buffers), (x,))
    )
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])


def test_functional_call_tied_weights_and_strict() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3, bias=False)
            self.b = nn.Linear(3, 3, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    m = Tied()
    w = torch.randn(3, 3)
    x = torch.randn(2, 3)
    assert_trees_close(lf.functional_call(m, {"a.weight": w}, (x,)), x @ w.T @ w.T)
    assert_trees_close(
        lf.functional_call(m, {"a.weight": w}, (x,), tie_weights=False), x @ w.T @ m.a.weight.detach().T
    )
    with pytest.raises(ValueError, match=r"missing keys"):
        lf.functional_call(m, {}, (x,), strict=True)
    with pytest.raises(ValueError, match=r"appeared in multiple dictionaries"):
        lf.functional_call(m, ({"a.weight": w}, {"a.weight": w}), (x,))


def test_stack_module_state_matches_torch_func() -> None:
    models = [nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)) for _ in range(3)]
    ours = lf.stack_module_state(models)
    theirs = tf.stack_module_state(models)
    assert_trees_close(ours, theirs)
    assert ours[0]["0.weight"].requires_grad and ours[0]["0.weight"].is_leaf
    with pytest.raises(RuntimeError, match=r"expected at least one model"):
        lf.stack_module_state([])


def test_batch_norm_with_running_stats_errors_and_replacement_works() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    x = torch.randn(4, 6, 3)
    with pytest.raises(RuntimeError, match=r"vmap\(BatchNorm1d\)\(Tensor\[4, 6, 3\]\): .*running_mean"):
        lf.vmap(bn)(x)
    lf.replace_all_batch_norm_modules_(bn)
    assert_trees_close(lf.vmap(bn)(x), torch.stack([bn(e) for e in x]).detach())
    bn.eval()
    assert_trees_close(lf.vmap(bn)(x), torch.stack([bn(e) for e in x]).detach())


def test_per_sample_grads_through_batch_norm() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 1)
    ).double()
    tf.replace_all_batch_norm_modules_(model)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(3, 5, 2, 4, 4, dtype=torch.float64)

    def loss(lib: object):
        return lambda p, xb: lib.functional_call(model, p, (xb,)).pow(2).mean()

    ours = lf.vmap(lf.grad(loss(lf)), in_dims=(None, 0))(params, x)
    theirs = tf.vmap(tf.grad(loss(tf)), in_dims=(None, 0))(params, x)
    assert_trees_close(ours, theirs)
