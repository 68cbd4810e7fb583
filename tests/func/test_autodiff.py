"""grad, grad_and_value, vjp and jvp, alone and composed with each other and vmap (torch.func is the oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.func as tf

import loom.func as lf

from ._checks import assert_trees_close

pytestmark = pytest.mark.usefixtures("float64")


def f_scalar(x: torch.Tensor) -> torch.Tensor:
    return (x.sin() * x.exp()).sum()


def h_vec(x: torch.Tensor) -> torch.Tensor:
    return x.sin() * x + x.cos().sum()


def test_no_perturbation_confusion() -> None:
    x = torch.tensor(2.0)
    assert lf.grad(lambda x: lf.grad(lambda y: x * y)(x))(x).item() == 1.0
    one = torch.tensor(1.0)
    inner = lf.jvp(lambda x: lf.jvp(lambda y: x * y, (x,), (one,))[1], (x,), (one,))
    assert_trees_close(inner, (torch.tensor(2.0), torch.tensor(1.0)))


def test_grad_argnums_has_aux_and_value() -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return (x * y.sin()).sum(), {"y2": y * 2}

    x, y = torch.randn(3), torch.randn(3)
    for argnums in (0, 1, (0, 1), (1, 0), -1):
        assert_trees_close(
            lf.grad(f, argnums=argnums, has_aux=True)(x, y), tf.grad(f, argnums=argnums, has_aux=True)(x, y)
        )
        assert_trees_close(
            lf.grad_and_value(f, argnums=argnums, has_aux=True)(x, y),
            tf.grad_and_value(f, argnums=argnums, has_aux=True)(x, y),
        )


def test_grad_of_pytree_input() -> None:
    def f(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return ((x @ p["w"] + p["b"]).tanh() ** 2).sum()

    p = {"w": torch.randn(3, 2), "b": torch.randn(2)}
    x = torch.randn(5, 3)
    assert_trees_close(lf.grad(f)(p, x), tf.grad(f)(p, x))


COMPOSITIONS: dict[str, Any] = {
    "grad": lambda g, v, j: g(f_scalar),
    "vmap(grad)": lambda g, v, j: v(g(f_scalar)),
    "grad(vmap)": lambda g, v, j: g(lambda x: v(lambda r: (r @ r.flip(0)).tanh())(x).sum()),
    "grad(grad)": lambda g, v, j: v(v(g(g(lambda s: s.sin().exp())))),
    "grad(grad(grad))": lambda g, v, j: v(v(g(g(g(lambda s: s.sin().exp()))))),
    "vmap(grad(grad))": lambda g, v, j: v(v(g(g(lambda s: (s.sin() * s).exp())))),
    "grad(vmap(grad))": lambda g, v, j: g(lambda x: v(g(f_scalar))(x).pow(2).sum()),
    "vmap(vmap(grad))": lambda g, v, j: v(v(g(lambda s: s.cos() * s))),
    "jvp": lambda g, v, j: lambda x: j(h_vec, (x,), (torch.ones_like(x),)),
    "jvp(jvp)": lambda g, v, j: (
        lambda x: j(lambda y: j(h_vec, (y,), (torch.ones_like(y),))[1], (x,), (x.cos(),))
    ),
    "jvp(jvp(jvp))": lambda g, v, j: (
        lambda x: j(
            lambda z: j(lambda y: j(h_vec, (y,), (torch.ones_like(y),))[1], (z,), (z.cos(),))[1], (x,), (x,)
        )
    ),
    "vmap(jvp)": lambda g, v, j: v(lambda x: j(h_vec, (x,), (x.exp(),))),
    "jvp(vmap)": lambda g, v, j: lambda x: j(v(h_vec), (x,), (x.exp(),)),
    "grad(jvp)": lambda g, v, j: g(lambda x: j(h_vec, (x,), (torch.ones_like(x),))[1].sum()),
    "jvp(grad)": lambda g, v, j: lambda x: j(g(f_scalar), (x,), (torch.ones_like(x),)),
    "vmap(jvp(grad))": lambda g, v, j: v(lambda x: j(g(f_scalar), (x,), (x.sin(),))),
}


@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_composition_matches_torch_func(name: str) -> None:
    x = torch.randn(4, 3)
    build = COMPOSITIONS[name]
    ours = build(lf.grad, lf.vmap, lf.jvp)(x)
    theirs = build(tf.grad, tf.vmap, tf.jvp)(x)
    assert_trees_close(ours, theirs)


def test_vjp_reusable_and_under_vmap() -> None:
    x = torch.randn(4, 3)
    out, fn = lf.vjp(h_vec, x)
    out2, fn2 = tf.vjp(h_vec, x)
    assert_trees_close((out, fn(x), fn(torch.ones_like(x))), (out2, fn2(x), fn2(torch.ones_like(x))))
    cts = torch.randn(6, 4, 3)
    assert_trees_close(lf.vmap(fn)(cts), tf.vmap(fn2)(cts))


def test_vjp_has_aux_and_pytree_outputs() -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"a": x * y, "b": (x + y).exp()}, x.sum()

    x, y = torch.randn(3), torch.randn(3)
    out, fn, aux = lf.vjp(f, x, y, has_aux=True)
    out2, fn2, aux2 = tf.vjp(f, x, y, has_aux=True)
    ct = {"a": torch.randn(3), "b": torch.randn(3)}
    assert_trees_close((out, fn(ct), aux), (out2, fn2(ct), aux2))
    with pytest.raises(RuntimeError, match=r"vjp\(f, has_aux=True\)\(.*\) vjp_fn: expected cotangents"):
        fn(torch.ones(3))


def test_outer_no_grad_is_ignored_inner_respected() -> None:
    x = torch.randn(3)
    with torch.no_grad():
        assert_trees_close(lf.grad(f_scalar)(x), tf.grad(f_scalar)(x))

    def inner(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = x * 2
        return (y * x).sum()

    assert_trees_close(lf.grad(inner)(x), tf.grad(inner)(x))


def test_grad_result_is_differentiable_by_base_autograd() -> None:
    x = torch.randn(3, requires_grad=True)
    (g,) = torch.autograd.grad(lf.grad(f_scalar)(x).sum(), x)
    x2 = x.detach().clone().requires_grad_()
    (g2,) = torch.autograd.grad(tf.grad(f_scalar)(x2).sum(), x2)
    assert_trees_close(g, g2)


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g

    @staticmethod
    def vmap(info: Any, in_dims: Any, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        return Cube.apply(x), in_dims[0]


def test_custom_autograd_function_under_vmap_and_grad() -> None:
    x = torch.randn(4, 3)
    assert_trees_close(lf.vmap(Cube.apply)(x), x**3)
    assert_trees_close(lf.grad(lambda x: Cube.apply(x).sum())(x), tf.grad(lambda x: Cube.apply(x).sum())(x))
    assert_trees_close(
        lf.vmap(lf.grad(lambda x: Cube.apply(x).sum()))(x), tf.vmap(tf.grad(lambda x: Cube.apply(x).sum()))(x)
    )
    assert_trees_close(
        lf.grad(lambda x: lf.vmap(Cube.apply)(x).sum())(x), tf.grad(lambda x: tf.vmap(Cube.apply)(x).sum())(x)
    )


class CubeWithoutVmap(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g


def test_custom_function_without_vmap_rule_under_grad_of_vmap_is_an_error() -> None:
    x = torch.randn(4, 3)
    assert_trees_close(lf.vmap(CubeWithoutVmap.apply)(x), x**3)
    with pytest.raises(NotImplementedError, match=r"CubeWithoutVmap .* give it a vmap staticmethod"):
        lf.grad(lambda x: lf.vmap(CubeWithoutVmap.apply)(x).sum())(x)


def test_errors_repeat_the_call() -> None:
    with pytest.raises(
        RuntimeError, match=r"grad\(h_vec\)\(Tensor\[3\]\): expected h_vec to return a scalar"
    ):
        lf.grad(h_vec)(torch.randn(3))
    with pytest.raises(RuntimeError, match=r"grad\(f_scalar, argnums=2\)\(Tensor\[3\]\): got argnums=2"):
        lf.grad(f_scalar, argnums=2)(torch.randn(3))
    with pytest.raises(RuntimeError, match=r"has_aux=True the function must return a \(output, aux\) tuple"):
        lf.grad(f_scalar, has_aux=True)(torch.randn(3))
    with pytest.raises(RuntimeError, match=r"jvp\(h_vec\).*expected primals to be a tuple"):
        lf.jvp(h_vec, torch.randn(3), (torch.randn(3),))
    with pytest.raises(RuntimeError, match=r"expected each tangent to have the shape of its primal"):
        lf.jvp(h_vec, (torch.randn(3),), (torch.randn(4),))


def _per_example_grad_sum(lib: Any, w: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    def loss(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ w.t()) * x.sin().sum()).sum()

    return lib.vmap(lib.grad(loss), in_dims=(None, 0))(w, xs).pow(2).sum()


def test_vmap_of_grad_stays_differentiable_outside() -> None:
    # The inner grad's physical graph is skipped only for its own leaf aliases (NOTE [physical ops of inner
    # levels]); a weight that base autograd or an outer grad differentiates must still be recorded.
    w, xs = torch.randn(4, 3), torch.randn(5, 3)
    expected = tf.grad(lambda w: _per_example_grad_sum(tf, w, xs))(w)
    assert_trees_close(lf.grad(lambda w: _per_example_grad_sum(lf, w, xs))(w), expected)
    w_leaf = w.clone().requires_grad_()
    _per_example_grad_sum(lf, w_leaf, xs).backward()
    assert_trees_close(w_leaf.grad, expected)
    # and a weight derived from a leaf in more than one step
    base = w.clone().requires_grad_()
    _per_example_grad_sum(lf, base * 1.0 + 0.0, xs).backward()
    assert_trees_close(base.grad, expected)
