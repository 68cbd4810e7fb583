"""Functions that cannot be traced run eagerly with one clear warning, or raise with fullgraph=True."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.func as tf

import loom.func as lf

from .._checks import assert_trees_close


def branchy(x: torch.Tensor) -> torch.Tensor:
    g = lf.grad(lambda v: v.pow(2).sum())(x)
    if g.sum() > 0:  # data-dependent Python control flow
        return g
    return -g


def expected_branchy(x: torch.Tensor) -> torch.Tensor:
    g = tf.grad(lambda v: v.pow(2).sum())(x)
    return g if g.sum() > 0 else -g


def test_data_dependent_control_flow_falls_back_with_one_warning() -> None:
    c = lf.compile(branchy)
    pos, neg = torch.ones(3), -torch.ones(3)
    with pytest.warns(
        UserWarning, match=r"compile\(branchy\)\(Tensor\[3\]\): cannot trace branchy"
    ) as record:
        assert_trees_close(c(pos), expected_branchy(pos))
    assert len(record) == 1
    assert "fullgraph=True" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, for this signature or a new one
        assert_trees_close(c(neg), expected_branchy(neg))  # both branches right: nothing was baked in
        assert_trees_close(c(torch.ones(5)), expected_branchy(torch.ones(5)))
    info = c.cache_info()
    assert (info.eager_calls, info.hits, info.entries) == (3, 0, 2)


def test_item_in_arithmetic_is_traced_but_tolist_falls_back() -> None:
    def scale_by_max(x: torch.Tensor) -> torch.Tensor:
        return lf.vmap(torch.sin)(x) * x.max().item()  # stays an op on a data-dependent scalar

    def as_list(x: torch.Tensor) -> list[float]:
        return lf.grad(lambda v: v.exp().sum())(x).tolist()  # type: ignore[no-any-return]

    c = lf.compile(scale_by_max)
    for _ in range(2):
        x = torch.randn(4, 3)
        assert_trees_close(c(x), x.sin() * x.max().item())
    assert c.cache_info().hits == 1
    with pytest.warns(UserWarning, match="cannot trace as_list.*it returns a SymFloat"):
        assert lf.compile(as_list)(x[0]) == x[0].exp().tolist()


def test_outputs_a_graph_cannot_return_fall_back() -> None:
    def returns_a_function(x: torch.Tensor) -> Any:
        return lf.vjp(torch.sin, x)

    x = torch.randn(3)
    with pytest.warns(UserWarning, match="it returns a function, which a graph cannot output"):
        _, vjp_fn = lf.compile(returns_a_function)(x)
    assert_trees_close(vjp_fn(torch.ones(3)), (x.cos(),))


def test_fullgraph_raises_instead() -> None:
    c = lf.compile(branchy, fullgraph=True)
    with pytest.raises(
        RuntimeError, match=r"compile\(branchy\)\(Tensor\[3\]\): cannot trace branchy .*fullgraph"
    ):
        c(torch.ones(3))


def test_errors_of_the_function_itself_propagate_without_a_warning() -> None:
    c = lf.compile(lf.vmap(torch.add))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="expected all tensors to have the same size in the mapped dim"):
            c(torch.randn(3, 2), torch.randn(4, 2))
    assert c.cache_info().entries == 0  # nothing cached: the next call traces again
    assert_trees_close(c(torch.ones(3, 2), torch.ones(3, 2)), 2 * torch.ones(3, 2))
