"""jacrev, jacfwd, hessian, linearize against torch.func (float64), with argnums, has_aux, pytrees."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

from ._checks import assert_trees_close

pytestmark = pytest.mark.usefixtures("float64")


def f2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.sin()[:, None] * y.exp()[None, :]).tanh()


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1,)])
def test_jacobians_match_torch_func(jac: str, argnums: object) -> None:
    x, y = torch.randn(3), torch.randn(4)
    assert_trees_close(getattr(lf, jac)(f2, argnums)(x, y), getattr(tf, jac)(f2, argnums)(x, y))


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
def test_jacobian_pytree_outputs_and_aux(jac: str) -> None:
    def f(x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"a": x.sin(), "b": (x @ x).reshape(1)}, x.sum()

    x = torch.randn(3)
    assert_trees_close(getattr(lf, jac)(f, has_aux=True)(x), getattr(tf, jac)(f, has_aux=True)(x))


def test_jacrev_chunk_size() -> None:
    x = torch.randn(7)
    w = torch.randn(5, 7)
    for chunk in (1, 3, 100):
        assert_trees_close(
            lf.jacrev(lambda v: (w @ v).tanh(), chunk_size=chunk)(x), tf.jacrev(lambda v: (w @ v).tanh())(x)
        )


@pytest.mark.parametrize(
    "outer,inner", [("jacrev", "jacrev"), ("jacfwd", "jacrev"), ("jacfwd", "jacfwd"), ("jacrev", "jacfwd")]
)
def test_second_order_jacobians(outer: str, inner: str) -> None:
    x = torch.randn(4)

    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.sin() * v.roll(1)).exp()

    ours = getattr(lf, outer)(getattr(lf, inner)(f))(x)
    theirs = getattr(tf, outer)(getattr(tf, inner)(f))(x)
    assert_trees_close(ours, theirs)


def test_hessian_and_vmap_hessian() -> None:
    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.sin() * v.cos().sum()).pow(2).sum()

    x = torch.randn(5)
    assert_trees_close(lf.hessian(f)(x), tf.hessian(f)(x))
    xs = torch.randn(3, 5)
    assert_trees_close(lf.vmap(lf.hessian(f))(xs), tf.vmap(tf.hessian(f))(xs))
    assert_trees_close(lf.hessian(f2, argnums=(0, 1))(torch.randn(2), torch.randn(2)).__class__, tuple)


@pytest.mark.filterwarnings("ignore:Attempted to insert a get_attr Node")  # from torch.func.linearize
def test_linearize() -> None:
    x = torch.randn(4)
    out, fn = lf.linearize(lambda v: v.sin().exp(), x)
    out2, fn2 = tf.linearize(lambda v: v.sin().exp(), x)
    t = torch.randn(4)
    assert_trees_close((out, fn(t), fn(2 * t)), (out2, fn2(t), fn2(2 * t)))


def test_jacobian_of_linear_tanh_via_vmap_vjp_announcement_example() -> None:
    # PyTorch 1.11 announcement: the Jacobian of F.linear(x, weight, bias).tanh() by vmap(vjp_fn).
    d = 16
    weight, bias, x = torch.randn(d, d), torch.randn(d), torch.randn(d)

    def predict(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias).tanh()

    _, vjp_fn = lf.vjp(lambda v: predict(weight, bias, v), x)
    unit_vectors = torch.eye(d)
    (jac,) = lf.vmap(vjp_fn)(unit_vectors)
    expected = torch.stack(
        [torch.autograd.grad(predict(weight, bias, x.requires_grad_())[i], x)[0] for i in range(d)]
    )
    assert_trees_close(jac, expected)
    assert_trees_close(lf.jacrev(predict, argnums=2)(weight, bias, x), expected)
    assert_trees_close(lf.jacfwd(predict, argnums=2)(weight, bias, x), expected)
