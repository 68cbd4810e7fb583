"""addbmm under vmap and vmap(vjp), every batched/unbatched combination of its three operands."""

from __future__ import annotations

import itertools

import pytest
import torch

from ._rule_checks import assert_rule_used, check_all

pytestmark = pytest.mark.usefixtures("float64")
aten = torch.ops.aten


@pytest.mark.parametrize("batched", list(itertools.product([0, None], repeat=3)), ids=str)
def test_addbmm(batched: tuple[int | None, int | None, int | None]) -> None:
    if batched == (None, None, None):
        pytest.skip("vmap needs a batched input")
    shapes = [(5, 4), (3, 5, 2), (3, 2, 4)]
    args = [torch.randn(3, *s) if b == 0 else torch.randn(s) for s, b in zip(shapes, batched)]
    check_all(lambda m, a, b: torch.addbmm(m, a, b), args, batched)
    check_all(lambda m, a, b: torch.addbmm(m, a, b, beta=0.5, alpha=2.0), args, batched)
    assert_rule_used(aten.addbmm.default)


@pytest.mark.parametrize("bias_shape", [(4,), (5, 4), (1, 4)], ids=str)
@pytest.mark.parametrize("batched", list(itertools.product([0, None], repeat=3)), ids=str)
def test_addmm(batched: tuple[int | None, int | None, int | None], bias_shape: tuple[int, ...]) -> None:
    # with a batched product, addmm runs as one baddbmm (the bias added inside the matmul)
    if batched == (None, None, None):
        pytest.skip("vmap needs a batched input")
    shapes = [bias_shape, (5, 3), (3, 4)]
    args = [torch.randn(3, *s) if b == 0 else torch.randn(s) for s, b in zip(shapes, batched)]
    check_all(lambda m, a, b: torch.addmm(m, a, b), args, batched)
    check_all(lambda m, a, b: torch.addmm(m, a, b, beta=0.5, alpha=2.0), args, batched)
    check_all(lambda m, a, b: torch.addmm(m, a, b, beta=0.0), args, batched)
    assert_rule_used(aten.addmm.default)
