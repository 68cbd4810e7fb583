"""The PyTorch 1.11 announcement examples, each checked against a Python for-loop (and torch.func)."""

from __future__ import annotations

import copy

import torch
import torch.func as tf
import torch.nn.functional as F
from torch import nn

import loom.func as lf

from ._checks import assert_trees_close


class SimpleCNN(nn.Module):
    """The CNN of the per-sample-gradients tutorial (MNIST-shaped inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def test_per_sample_gradients_of_a_cnn_match_a_loop() -> None:
    torch.manual_seed(0)
    model = SimpleCNN().double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    data = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    targets = torch.randint(10, (4,))

    def loss(params: dict, buffers: dict, sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = lf.functional_call(model, (params, buffers), (sample.unsqueeze(0),))
        return F.nll_loss(pred, target.unsqueeze(0))

    ours = lf.vmap(lf.grad(loss), in_dims=(None, None, 0, 0))(params, buffers, data, targets)
    loop = {k: [] for k in params}
    for x, y in zip(data, targets):
        model.zero_grad()
        F.nll_loss(model(x.unsqueeze(0)), y.unsqueeze(0)).backward()
        for k, p in model.named_parameters():
            loop[k].append(p.grad.clone())
    assert_trees_close(ours, {k: torch.stack(v) for k, v in loop.items()})


def test_model_ensembling_with_stack_module_state() -> None:
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3)) for _ in range(5)]
    x = torch.randn(8, 20)
    params, buffers = lf.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def run(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return lf.functional_call(base, (p, b), (x,))

    same_batch = lf.vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    assert_trees_close(same_batch, torch.stack([m(x) for m in models]).detach())
    xs = torch.randn(5, 8, 20)
    per_model = lf.vmap(run)(params, buffers, xs)
    assert_trees_close(per_model, torch.stack([m(xi) for m, xi in zip(models, xs)]).detach())


def test_maml_inner_loop_matches_loop_and_torch_func() -> None:
    torch.manual_seed(0)
    dtype = torch.float64

    def net(params: tuple, x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = params
        return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)

    params = (
        torch.randn(16, 1, dtype=dtype) * 0.5,
        torch.zeros(16, dtype=dtype),
        torch.randn(1, 16, dtype=dtype) * 0.5,
        torch.zeros(1, dtype=dtype),
    )

    def make_task_loss(g: object) -> object:
        def task_loss(params: tuple, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor):
            def inner(p: tuple) -> torch.Tensor:
                return F.mse_loss(net(p, xs), ys)

            adapted = params
            for _ in range(2):
                grads = g(inner)(adapted)
                adapted = tuple(p - 0.1 * gp for p, gp in zip(adapted, grads))
            return F.mse_loss(net(adapted, xq), yq)

        return task_loss

    tasks = [torch.randn(4, 5, 1, dtype=dtype) for _ in range(4)]
    xs, ys, xq, yq = tasks
    ours = lf.vmap(lf.grad(make_task_loss(lf.grad)), in_dims=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq)
    theirs = tf.vmap(tf.grad(make_task_loss(tf.grad)), in_dims=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq)
    assert_trees_close(ours, theirs)

    def autograd_inner(f: object) -> object:
        def g(p: tuple) -> tuple:
            return torch.autograd.grad(f(p), p, create_graph=True)

        return g

    loop = []
    for i in range(4):
        p = tuple(t.clone().requires_grad_() for t in params)
        loss = make_task_loss(autograd_inner)(p, xs[i], ys[i], xq[i], yq[i])
        loop.append(torch.autograd.grad(loss, p))
    assert_trees_close(ours, tuple(torch.stack(col) for col in zip(*loop)))


def test_hessian_of_a_scalar_function_matches_autograd_loop() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, dtype=torch.float64)

    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.tanh() @ v.roll(1)).exp()

    rows = []
    for i in range(8):
        v = x.clone().requires_grad_()
        (g,) = torch.autograd.grad(f(v), v, create_graph=True)
        rows.append(torch.autograd.grad(g[i], v)[0])
    assert_trees_close(lf.hessian(f)(x), torch.stack(rows))
