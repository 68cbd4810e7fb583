"""new_* factories under vmap: batched buffers, as torch.func, so per-example writes into them work."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ._rule_checks import assert_rule_used, check_all, check_vmap

pytestmark = pytest.mark.usefixtures("float64")
aten = torch.ops.aten

FACTORIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "new_zeros": lambda x: x.new_zeros(2, 3),
    "new_ones": lambda x: x.new_ones((2, 3), dtype=torch.float32),
    "new_full": lambda x: x.new_full((2,), 1.5),
    "new_empty": lambda x: x.new_empty((2, 3)).fill_(2.0),
    "new_empty_strided": lambda x: x.new_empty_strided((2, 3), (1, 2)).fill_(3.0),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_shape_and_values(name: str) -> None:
    out = check_vmap(FACTORIES[name], [torch.randn(4, 5)], 0)
    assert out.shape[0] == 4


def test_new_empty_strided_layout() -> None:
    import loom.func as lf

    def f(x: torch.Tensor) -> torch.Tensor:
        buf = x.new_empty_strided((2, 3), (1, 2))
        assert buf.stride() == (1, 2)
        return buf.copy_(x[:6].reshape(2, 3))

    x = torch.randn(4, 6)
    torch.testing.assert_close(lf.vmap(f)(x), x.reshape(4, 2, 3))


def test_writes_into_fresh_buffers() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        buf = x.new_zeros(7)
        buf[1:6].copy_(x * 2)
        buf.index_add_(0, torch.tensor([0, 0, 6]), x[:3])
        return buf.select_scatter(x[0], 0, 3)

    check_all(f, [torch.randn(4, 5)], 0)
    assert_rule_used(aten.new_zeros.default, aten.select_scatter.default, aten.slice_backward.default)


def test_slice_and_select_backward_scatter() -> None:
    x, y = torch.randn(3, 4, 6), torch.randn(3, 4, 2)
    check_all(lambda a, b: a.slice_scatter(b, -1, 1, 5, 2), [x, y], (0, 0))
    check_all(lambda a, b: a.slice_scatter(b, 1, 1, 5, 2), [x[0], y], (None, 0))
    check_all(lambda a, b: a.select_scatter(b, 1, 3), [x, y[..., 0]], (0, 0))
    check_all(lambda a, b: a.select_scatter(b, 0, -1), [x.movedim(0, 2), torch.randn(6)], (2, None))
    check_all(lambda a: a[:, 2:5:2].exp() * a[1].sum(), [x], 0)
    assert_rule_used(
        aten.slice_scatter.default,
        aten.select_scatter.default,
        aten.slice_backward.default,
        aten.select_backward.default,
    )
