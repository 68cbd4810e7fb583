"""constant, reflection, replication and circular padding under vmap, vmap(vjp) and vmap(grad)."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

from ._rule_checks import assert_rule_used, check_all

pytestmark = pytest.mark.usefixtures("float64")
aten = torch.ops.aten


@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 0), (-1, 2, 1, 1), (1, 1, 1, 1, 1, 1)])
def test_constant_pad(pad: tuple[int, ...]) -> None:
    x = torch.randn(3, 2, 4, 5)
    check_all(lambda a: F.pad(a, pad, value=0.5), [x], 0)
    check_all(lambda a: F.pad(a, pad), [x.movedim(0, 2)], 2)
    check_all(lambda a, b: F.pad(a, pad) * b, [x, torch.randn(3)], (0, 0))
    assert_rule_used(aten.constant_pad_nd.default)


def test_constant_pad_too_long() -> None:
    with pytest.raises(RuntimeError, match="constant_pad_nd got pad"):
        lf.vmap(lambda a: torch.constant_pad_nd(a, (1, 1, 1, 1)))(torch.randn(3, 4))


CASES = {
    1: ((2, 1), [(3, 4, 6), (3, 2, 4, 6)]),
    2: ((1, 2, 2, 0), [(3, 2, 5, 6), (3, 2, 2, 5, 6)]),
    3: ((1, 0, 2, 1, 0, 1), [(3, 2, 4, 4, 4), (3, 1, 2, 4, 4, 4)]),
}


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_reflection_replication(mode: str, k: int) -> None:
    pad, shapes = CASES[k]
    for shape in shapes:
        x = torch.randn(shape)
        check_all(lambda a: F.pad(a, pad, mode=mode), [x], 0)
        check_all(lambda a: F.pad(a, pad, mode=mode), [x.movedim(0, -1)], -1)
        check_all(lambda a, b: F.pad(a * b, pad, mode=mode), [x[0], torch.randn(3)], (None, 0))
    name = f"{'reflection' if mode == 'reflect' else 'replication'}_pad{k}d"
    assert_rule_used(getattr(aten, name).default, getattr(aten, f"{name}_backward").default)


CIRCULAR_CASES = {
    1: [((2, 1), (3, 4, 6)), ((-1, 2), (3, 2, 4, 6))],
    2: [((2, 2, 1, 1), (3, 2, 3, 8)), ((1, 0, -1, 2), (3, 2, 2, 5, 6))],
    3: [((1, 0, 2, 1, 0, 1), (3, 2, 4, 4, 4)), ((1, 1, 1, 1, 1, 1), (3, 1, 2, 3, 4, 4))],
}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_circular(k: int) -> None:
    for pad, shape in CIRCULAR_CASES[k]:
        x = torch.randn(shape)
        f = lambda a, p=pad: F.pad(a, p, mode="circular")  # noqa: E731
        check_all(f, [x], 0)
        check_all(f, [x.movedim(0, -1)], -1)
        check_all(lambda a, b, p=pad: F.pad(a * b, p, mode="circular"), [x[0], torch.randn(3)], (None, 0))
    # The composite allocates with new_empty and copies slices in; its backward is slice_backward.
    assert_rule_used(aten.new_empty.default, aten.copy_.default, aten.slice_backward.default)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_per_example_grads(mode: str, k: int) -> None:
    pad, shapes = CASES[k]
    x = torch.randn(shapes[1])
    scale = torch.randn(shapes[1][1:])

    def loss(a: torch.Tensor) -> torch.Tensor:
        return (F.pad(a * scale, pad, mode=mode) ** 2).sum()

    ours = lf.vmap(lf.grad(loss))(x)
    torch.testing.assert_close(ours, tf.vmap(tf.grad(loss))(x))
    torch.testing.assert_close(ours, torch.stack([tf.grad(loss)(e) for e in x]))
