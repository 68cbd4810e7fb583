"""conv (1d/2d/3d, grouped, transposed, batched weights), pooling, nll_loss, batch_norm: vmap and vmap(vjp)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

from .._checks import assert_trees_close, check_vmap

pytestmark = pytest.mark.usefixtures("float64")


def check_vmap_vjp(
    func: Callable[..., Any], args: list[Any], in_dims: Any, n_diff: int | None = None
) -> None:
    """Per-example vjp with respect to the first ``n_diff`` inputs (default all): loom vs torch.func."""
    n = len(args) if n_diff is None else n_diff

    def per_example(lib: Any) -> Callable[..., Any]:
        def run(*xs: Any) -> Any:
            out, fn = lib.vjp(lambda *d: func(*d, *xs[n:]), *xs[:n])
            return fn(torch.ones_like(out))

        return lib.vmap(run, in_dims)

    assert_trees_close(per_example(lf)(*args), per_example(tf)(*args))


CONV_CASES = {
    "conv2d x batched": (
        lambda x, w, b: F.conv2d(x, w, b, padding=1),
        (3, 2, 4, 5, 5),
        (6, 4, 3, 3),
        (0, None, None),
    ),
    "conv2d w batched": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2),
        (2, 4, 5, 5),
        (3, 6, 4, 3, 3),
        (None, 0, None),
    ),
    "conv2d both, grouped": (
        lambda x, w, b: F.conv2d(x, w, b, groups=2),
        (3, 2, 4, 5, 5),
        (3, 6, 2, 3, 3),
        (0, 0, None),
    ),
    "conv2d no N": (lambda x, w, b: F.conv2d(x, w, b), (3, 4, 5, 5), (3, 6, 4, 3, 3), (0, 0, None)),
    "conv1d dilated": (
        lambda x, w, b: F.conv1d(x, w, b, dilation=2),
        (3, 2, 4, 9),
        (6, 4, 3),
        (0, None, None),
    ),
    "conv2d no N, weight shared": (
        lambda x, w, b: F.conv2d(x, w, b, padding=1),
        (3, 4, 5, 5),
        (6, 4, 3, 3),
        (0, None, None),
    ),
    "conv_transpose2d, weight shared": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
        (3, 2, 4, 5, 5),
        (4, 3, 3, 3),
        (0, None, None),
    ),
    "conv2d grouped, weight shared": (
        lambda x, w, b: F.conv2d(x, w, b, groups=2),
        (3, 2, 4, 5, 5),
        (6, 2, 3, 3),
        (0, None, None),
    ),
    "conv3d": (lambda x, w, b: F.conv3d(x, w, b), (3, 1, 2, 4, 4, 4), (3, 2, 2, 2, 2, 2), (0, 0, None)),
    "conv_transpose2d": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, output_padding=1),
        (3, 2, 4, 5, 5),
        (3, 4, 6, 3, 3),
        (0, 0, None),
    ),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_convolution(name: str) -> None:
    func, xs, ws, dims = CONV_CASES[name]
    transposed = "transpose" in name
    out_channels = ws[(dims[1] == 0) + transposed]
    args = [torch.randn(xs), torch.randn(ws), torch.randn(out_channels)]
    check_vmap(func, args, dims)
    check_vmap_vjp(func, args, dims)


def test_pooling_and_log_softmax_nll() -> None:
    x = torch.randn(3, 2, 4, 6, 6)
    check_vmap(lambda a: F.max_pool2d(a, 2), [x])
    check_vmap(lambda a: F.avg_pool2d(a, 3, stride=1, padding=1), [x])
    check_vmap(lambda a: F.adaptive_avg_pool2d(a, 2), [x[:, 0]])
    check_vmap_vjp(lambda a: F.max_pool2d(a, 2), [x], 0)
    check_vmap_vjp(lambda a: F.avg_pool2d(a, 2), [x], 0)
    logits = torch.randn(4, 5, 7)
    target = torch.randint(7, (4, 5))
    weight = torch.rand(7)
    for reduction in ("mean", "sum", "none"):

        def f(lg: torch.Tensor, t: torch.Tensor, r: str = reduction) -> torch.Tensor:
            return F.nll_loss(F.log_softmax(lg, -1), t, weight=weight, reduction=r, ignore_index=2)

        check_vmap(f, [logits, target])
        check_vmap_vjp(f, [logits, target], (0, 0), n_diff=1)


def test_batch_norm_without_running_stats() -> None:
    x = torch.randn(3, 5, 4, 2, 2)
    w, b = torch.randn(4), torch.randn(4)
    f = lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True)  # noqa: E731
    check_vmap(f, [x, w, b], (0, None, None))
    check_vmap_vjp(f, [x, w, b], (0, None, None))
    check_vmap(f, [x, torch.randn(3, 4), b], (0, 0, None))
