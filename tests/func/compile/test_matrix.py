"""compile works for every transform and composition of the transforms test matrix (torch.func is the oracle).

Each case is compiled, called twice (the second call hits the cache) on fresh inputs, and compared with eager
Loom and torch.func; the traced graph must hold only aten ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F
from torch import nn

import loom.func as lf

from .._checks import assert_trees_close
from ..test_autodiff import COMPOSITIONS
from ._graph_checks import assert_flat_aten_graph

# torch.func (the oracle) loads its forward-AD decompositions with torch.jit.script on first use.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("float64"),
]


def check_compiled(
    build: Callable[[Any], Callable[..., Any]], make_inputs: Callable[[], tuple[Any, ...]]
) -> Any:
    """compile(build(loom)) == build(loom) == build(torch.func) on two input sets; the graph is flat aten."""
    compiled = lf.compile(build(lf))
    for call in range(2):
        inputs = make_inputs()
        ours = compiled(*inputs)
        assert_trees_close(ours, build(lf)(*inputs))
        assert_trees_close(ours, build(tf)(*inputs))
        assert compiled.cache_info().hits == call
    assert compiled.cache_info().misses == 1
    assert_flat_aten_graph(compiled)
    return compiled


@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_autodiff_compositions(name: str) -> None:
    def build(lib: Any) -> Any:
        return COMPOSITIONS[name](lib.grad, lib.vmap, lib.jvp)

    check_compiled(build, lambda: (torch.randn(4, 3),))


def f2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.sin()[:, None] * y.exp()[None, :]).tanh()


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1,)])
def test_jacobians(jac: str, argnums: Any) -> None:
    check_compiled(lambda lib: getattr(lib, jac)(f2, argnums), lambda: (torch.randn(3), torch.randn(4)))


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
def test_jacobian_pytree_outputs_and_aux(jac: str) -> None:
    def f(x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"a": x.sin(), "b": (x @ x).reshape(1)}, x.sum()

    check_compiled(lambda lib: getattr(lib, jac)(f, has_aux=True), lambda: (torch.randn(3),))


def test_jacrev_chunk_size() -> None:
    w = torch.randn(5, 7)
    check_compiled(lambda lib: lib.jacrev(lambda v: (w @ v).tanh(), chunk_size=2), lambda: (torch.randn(7),))


@pytest.mark.parametrize(
    "outer,inner", [("jacrev", "jacrev"), ("jacfwd", "jacrev"), ("jacfwd", "jacfwd"), ("jacrev", "jacfwd")]
)
def test_second_order_jacobians(outer: str, inner: str) -> None:
    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.sin() * v.roll(1)).exp()

    check_compiled(lambda lib: getattr(lib, outer)(getattr(lib, inner)(f)), lambda: (torch.randn(4),))


def test_hessian_vmap_hessian_and_argnums() -> None:
    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.sin() * v.cos().sum()).pow(2).sum()

    check_compiled(lambda lib: lib.hessian(f), lambda: (torch.randn(5),))
    check_compiled(lambda lib: lib.vmap(lib.hessian(f)), lambda: (torch.randn(3, 5),))
    check_compiled(
        lambda lib: lib.hessian(lambda x, y: (x.sin() * y.exp()).sum(), argnums=(0, 1)),
        lambda: (torch.randn(2), torch.randn(2)),
    )


@pytest.mark.filterwarnings("ignore:Attempted to insert a get_attr Node")  # from torch.func.linearize
def test_linearize_applied_inside_the_compiled_function() -> None:
    def build(lib: Any) -> Any:
        def f(x: torch.Tensor, t: torch.Tensor) -> Any:
            out, fn = lib.linearize(lambda v: v.sin().exp(), x)
            return out, fn(t), fn(2 * t)

        return f

    check_compiled(build, lambda: (torch.randn(4), torch.randn(4)))


def test_vjp_and_grad_and_value_with_aux() -> None:
    def build(lib: Any) -> Any:
        def f(x: torch.Tensor, ct: torch.Tensor) -> Any:
            out, vjp_fn, aux = lib.vjp(lambda v: (v.sin() * v, v.sum()), x, has_aux=True)
            return out, vjp_fn(ct), aux, lib.grad_and_value(lambda v: (v.exp() * v).sum())(x)

        return f

    check_compiled(build, lambda: (torch.randn(5), torch.randn(5)))


def test_jacobian_of_linear_tanh_via_vmap_vjp() -> None:
    d = 16
    weight, bias = torch.randn(d, d), torch.randn(d)

    def build(lib: Any) -> Any:
        def jacobian(x: torch.Tensor, unit_vectors: torch.Tensor) -> Any:
            _, vjp_fn = lib.vjp(lambda v: F.linear(v, weight, bias).tanh(), x)
            return lib.vmap(vjp_fn)(unit_vectors)

        return jacobian

    check_compiled(build, lambda: (torch.randn(d), torch.eye(d)))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def test_per_sample_grads_with_functional_call() -> None:
    model = SmallCNN()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def build(lib: Any) -> Any:
        def loss(p: Any, sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            pred = lib.functional_call(model, p, (sample.unsqueeze(0),))
            return F.nll_loss(pred, target.unsqueeze(0))

        return lib.vmap(lib.grad(loss), in_dims=(None, 0, 0))

    check_compiled(build, lambda: (params, torch.randn(6, 1, 10, 10), torch.randint(5, (6,))))


def test_ensemble_with_stack_module_state() -> None:
    models = [nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(4)]
    base = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to("meta")
    params, buffers = lf.stack_module_state(models)

    def build(lib: Any) -> Any:
        def fmodel(p: Any, b: Any, x: torch.Tensor) -> torch.Tensor:
            return lib.functional_call(base, (p, b), (x,))

        return lib.vmap(fmodel, in_dims=(0, 0, None))

    compiled = check_compiled(build, lambda: (params, buffers, torch.randn(5, 6)))
    with torch.no_grad():  # grad mode is part of the signature
        assert_trees_close(compiled(params, buffers, x := torch.randn(5, 6)), build(tf)(params, buffers, x))
    assert compiled.cache_info().misses == 2


def test_whole_training_step_with_functional_call() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def build(lib: Any) -> Any:
        def step(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float) -> Any:
            def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
                return F.mse_loss(lib.functional_call(model, p, (x,)), y)

            grads, value = lib.grad_and_value(loss)(p)
            return {k: p[k] - lr * grads[k] for k in p}, value

        return step

    params = {k: v.detach() for k, v in model.named_parameters()}
    step = check_compiled(build, lambda: (params, torch.randn(16, 4), torch.randn(16, 1), 0.1))
    # Several steps in a row, feeding the updated parameters back in, match eager.
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    ours, theirs = params, params
    for _ in range(3):
        ours, _ = step(ours, x, y, 0.1)
        theirs, _ = build(tf)(theirs, x, y, 0.1)
    assert_trees_close(ours, theirs)


def test_maml_inner_loop() -> None:
    def build(lib: Any) -> Any:
        def inner_loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return ((x @ w).tanh() - y).pow(2).mean()

        def adapted_loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            w2 = w - 0.1 * lib.grad(inner_loss)(w, x, y)
            return inner_loss(w2, x, y)

        return lib.vmap(lib.grad(adapted_loss), in_dims=(None, 0, 0))

    check_compiled(build, lambda: (torch.randn(3, 1), torch.randn(4, 5, 3), torch.randn(4, 5, 1)))
