"""layer_norm, group_norm and softmax / log_softmax under vmap and vmap(vjp): forward and backward rules."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

from .._checks import assert_trees_close
from ._rule_checks import assert_rule_used, check_all

pytestmark = pytest.mark.usefixtures("float64")
aten = torch.ops.aten


@pytest.mark.parametrize("shape", [(5,), (4, 5)])
def test_layer_norm(shape: tuple[int, ...]) -> None:
    x = torch.randn(3, 2, 4, 5)
    w, b = torch.randn(3, *shape), torch.randn(3, *shape)
    f = lambda a, w, b: F.layer_norm(a, shape, w, b)  # noqa: E731
    check_all(f, [x, w[0], b[0]], (0, None, None))
    check_all(f, [x, w, b], (0, 0, 0))
    check_all(f, [x[0], w, b[0]], (None, 0, None))
    check_all(f, [x[0], w[0], b], (None, None, 0))
    check_all(f, [x.movedim(0, 2), w.movedim(0, -1), b[0]], (2, -1, None))
    check_all(lambda a: F.layer_norm(a, shape), [x], 0)
    check_all(f, [torch.randn(3, *shape), w, b], (0, 0, 0))  # nothing but normalized dims
    assert_rule_used(aten.native_layer_norm.default, aten.native_layer_norm_backward.default)


def test_layer_norm_weight_only() -> None:
    x, w = torch.randn(3, 4, 5), torch.randn(3, 5)
    check_all(lambda a, w: F.layer_norm(a, (5,), w), [x, w], (0, 0))
    check_all(lambda a, b: F.layer_norm(a, (5,), None, b), [x, w], (0, 0))


@pytest.mark.parametrize("spatial", [(), (3,), (2, 3)])
def test_group_norm(spatial: tuple[int, ...]) -> None:
    x = torch.randn(3, 2, 6, *spatial)
    w, b = torch.randn(3, 6), torch.randn(3, 6)
    f = lambda a, w, b: F.group_norm(a, 3, w, b)  # noqa: E731
    check_all(f, [x, w[0], b[0]], (0, None, None))
    check_all(f, [x, w, b], (0, 0, 0))
    check_all(f, [x[0], w, b[0]], (None, 0, None))
    check_all(f, [x.movedim(0, -1), w.movedim(0, 1), b], (-1, 1, 0))
    check_all(lambda a: F.group_norm(a, 2), [x], 0)
    assert_rule_used(aten.native_group_norm.default, aten.native_group_norm_backward.default)


def test_norm_modules_per_sample_grad() -> None:
    """vmap(grad) over per-example inputs with shared module parameters, as in per-sample gradients."""
    ln, gn = torch.nn.LayerNorm(5), torch.nn.GroupNorm(2, 4)
    with torch.no_grad():
        for p in [*ln.parameters(), *gn.parameters()]:
            p.normal_()
    params = {**{f"ln.{k}": v.detach() for k, v in ln.named_parameters()}}
    params.update({f"gn.{k}": v.detach() for k, v in gn.named_parameters()})
    x = torch.randn(6, 2, 4, 5)

    def loss(lib_call: object, p: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        ln_p = {k[3:]: v for k, v in p.items() if k.startswith("ln.")}
        gn_p = {k[3:]: v for k, v in p.items() if k.startswith("gn.")}
        y = tf.functional_call(ln, ln_p, (a,))
        return tf.functional_call(gn, gn_p, (y,)).pow(2).sum()

    ours = lf.vmap(lf.grad(lambda p, a: loss(lf, p, a)), (None, 0))(params, x)
    theirs = tf.vmap(tf.grad(lambda p, a: loss(tf, p, a)), (None, 0))(params, x)
    assert_trees_close(ours, theirs)
    loop = [tf.grad(lambda p, a: loss(tf, p, a))(params, x[i]) for i in range(6)]
    assert_trees_close(ours, {k: torch.stack([g[k] for g in loop]) for k in params})


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax(fn: object) -> None:
    x = torch.randn(3, 4, 5)
    check_all(lambda a: fn(a, -1), [x], 0)  # type: ignore[operator]
    check_all(lambda a: fn(a, 0), [x], 2)  # type: ignore[operator]
    check_all(lambda a: fn(a, 0), [x[:, 0, 0]], 0)  # type: ignore[operator]
    assert_rule_used(aten._softmax.default, aten._softmax_backward_data.default)
