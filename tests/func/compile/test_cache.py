"""Signatures and the graph cache: what re-traces, what hits, dynamic shapes, inspection, argument errors."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
import torch
import torch.func as tf

import loom.func as lf
from loom.func._compile import _api

from .._checks import assert_trees_close
from ._graph_checks import assert_flat_aten_graph

# torch.func (the oracle) loads its forward-AD decompositions with torch.jit.script on first use.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("float64"),
]


def per_example_grads(lib: Any) -> Any:
    return lib.vmap(lib.grad(lambda v, s: (v.sin() * s).pow(2).sum()), in_dims=(0, None))


def misses_after(compiled: Any, calls: list[tuple[Any, ...]]) -> list[int]:
    """The cumulative miss count after each call, with every result checked against torch.func."""
    out = []
    for args in calls:
        assert_trees_close(compiled(*args), per_example_grads(tf)(*args))
        out.append(compiled.cache_info().misses)
    return out


def test_retraces_on_each_part_of_the_signature() -> None:
    c = lf.compile(per_example_grads(lf))
    x = torch.randn(4, 3)
    calls = [
        (x, 2.0),
        (torch.randn(4, 3), 2.0),  # same signature: hit
        (x, 3.0),  # a new Python scalar is baked into the graph: re-trace
        (torch.randn(5, 3), 2.0),  # new shape
        (x.float(), 2.0),  # new dtype
        (torch.randn(3, 4).t(), 2.0),  # same shape, new strides
        (x, 2),  # an int is not a float
        (torch.randn(4, 3), 3.0),  # seen before: hit
    ]
    assert misses_after(c, calls) == [1, 1, 2, 3, 4, 5, 6, 6]
    info = c.cache_info()
    assert (info.hits, info.entries, info.eager_calls) == (2, 6, 0)
    assert info.trace_seconds > 0


def test_requires_grad_and_grad_mode_are_part_of_the_signature_and_outputs_stay_differentiable() -> None:
    f = lf.grad(lambda v: (v.sin() * v).sum())
    c = lf.compile(f)
    x = torch.randn(4)
    c(x)
    xr = x.clone().requires_grad_()
    out = c(xr)
    assert c.cache_info().misses == 2
    assert out.requires_grad
    (ours,) = torch.autograd.grad(out.sum(), xr)
    (theirs,) = torch.autograd.grad(tf.grad(lambda v: (v.sin() * v).sum())(xr).sum(), xr)
    assert_trees_close(ours, theirs)
    with torch.no_grad():
        c(x)
    assert c.cache_info().misses == 3


def test_pytree_structure_and_kwargs() -> None:
    def f(p: dict[str, torch.Tensor], x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return lf.grad(lambda q: ((x @ q["w"] + q["b"]).tanh() * scale).sum())(p)

    def g(p: dict[str, torch.Tensor], x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return tf.grad(lambda q: ((x @ q["w"] + q["b"]).tanh() * scale).sum())(p)

    c = lf.compile(f)
    p = {"w": torch.randn(3, 2), "b": torch.randn(2)}
    x = torch.randn(5, 3)
    assert_trees_close(c(p, x), g(p, x))
    assert_trees_close(c(p, x, scale=2.0), g(p, x, scale=2.0))
    p3 = {**p, "unused": torch.randn(1)}
    assert_trees_close(c(p3, x), g(p3, x))
    assert c.cache_info().misses == 3
    assert_trees_close(c(p, x, scale=2.0), g(p, x, scale=2.0))
    assert c.cache_info().hits == 1


def test_dynamic_batch_size_does_not_retrace() -> None:
    c = lf.compile(per_example_grads(lf), dynamic=True)
    misses = misses_after(c, [(torch.randn(n, 3), 2.0) for n in (4, 7, 16, 4, 33)])
    assert misses == [1, 1, 1, 1, 1]
    assert_flat_aten_graph(c)
    # A new number of dims is a new signature.
    x = torch.randn(2, 4, 3)
    assert_trees_close(c(x, 2.0), per_example_grads(tf)(x, 2.0))
    assert c.cache_info().misses == 2


def test_dynamic_trace_leaves_loom_func_modules_as_they_were() -> None:
    import loom.func._rules._table as table
    import loom.func._vmap as vmap_module

    lf.compile(per_example_grads(lf), dynamic=True)(torch.randn(3, 2), 1.0)
    assert "int" not in vars(vmap_module) and "int" not in vars(table)  # NOTE [symbolic batch sizes]


def test_dynamic_shape_guards_retrace_when_the_graph_does_not_fit() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        # A branch on a shape: the graph traced for n > 4 must not serve n <= 4.
        return lf.vmap(lambda r: r.sin() if r.shape[0] > 4 else r.cos())(x)

    c = lf.compile(f, dynamic=True)
    for n, expected_misses in ((8, 1), (6, 1), (3, 2), (2, 2)):
        x = torch.randn(5, n)
        assert_trees_close(c(x), x.sin() if n > 4 else x.cos())
        assert c.cache_info().misses == expected_misses


def test_in_place_updates_of_captured_tensors_are_seen() -> None:
    w = torch.randn(3)
    c = lf.compile(lf.grad(lambda v: (v * w).sin().sum()))
    x = torch.randn(3)
    c(x)
    w.mul_(2.0)
    assert_trees_close(c(x), tf.grad(lambda v: (v * w).sin().sum())(x))
    assert c.cache_info().hits == 1


def test_in_place_writes_to_inputs_are_replayed() -> None:
    def f(x: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
        g = lf.vmap(lf.grad(lambda v: v.pow(3).sum()))(x)
        acc.add_(g.sum(0))
        return g

    c = lf.compile(f)
    x = torch.randn(4, 2)
    acc = torch.zeros(2)
    for _ in range(3):
        c(x, acc)
    assert_trees_close(acc, 3 * (3 * x**2).sum(0))


def test_decorator_forms_inspection_and_cache_clear() -> None:
    @lf.compile
    def f(x: torch.Tensor) -> torch.Tensor:
        return lf.jacrev(torch.sin)(x)

    @lf.compile(backend="replay", fullgraph=True)
    def g(x: torch.Tensor) -> torch.Tensor:
        return lf.jacfwd(torch.cos)(x)

    with pytest.raises(RuntimeError, match=r"compile\(f\)\.graph: nothing has been traced yet"):
        _ = f.graph
    x = torch.randn(3)
    assert_trees_close(f(x), tf.jacrev(torch.sin)(x))
    assert_trees_close(g(x), tf.jacfwd(torch.cos)(x))
    assert f.__name__ == "f" and f.backend == "replay" and g.backend == "replay"
    assert "aten.cos" in f.code and isinstance(f.graph, torch.fx.Graph)
    assert "BatchedTensor" not in f.code
    f.cache_clear()
    f(x)
    assert (f.cache_info().misses, f.cache_info().entries) == (2, 1)


def test_as_a_method_decorator() -> None:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(3, 3))

        @lf.compile
        def input_grads(self, x: torch.Tensor) -> torch.Tensor:
            return lf.vmap(lf.grad(lambda r: (self.w @ r).tanh().sum()))(x)

    m = Model()
    x = torch.randn(5, 3)
    with torch.no_grad():
        expected = tf.vmap(tf.grad(lambda r: (m.w @ r).tanh().sum()))(x)
        assert_trees_close(m.input_grads(x), expected)
        assert_trees_close(m.input_grads(x), expected)
    assert Model.input_grads.cache_info().hits == 1


def test_inside_a_transform_it_runs_eagerly() -> None:
    c = lf.compile(lambda v: (v.sin() * v).sum())
    x = torch.randn(4, 3)
    assert_trees_close(lf.vmap(lf.grad(c))(x), tf.vmap(tf.grad(lambda v: (v.sin() * v).sum()))(x))
    assert c.cache_info().eager_calls == 1  # one call, with vmap's and grad's wrappers as inputs
    assert c.cache_info().misses == 0


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"compile: backend must be None or one of .*got 'xla'"):
        lf.compile(torch.sin, backend="xla")
    with pytest.raises(TypeError, match="compile: dynamic must be a bool, got 1"):
        lf.compile(torch.sin, dynamic=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="compile: fullgraph must be a bool"):
        lf.compile(torch.sin, fullgraph="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="compile: expected a callable to compile, got int: 3"):
        lf.compile(3)  # type: ignore[arg-type]


def test_public_name_and_docstring_example() -> None:
    assert lf.compile.__module__ == "loom.func"
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(_api.compile, "compile", globs={}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def test_namedtuples_ordered_dicts_and_nested_containers_round_trip() -> None:
    from collections import OrderedDict, namedtuple

    Pair = namedtuple("Pair", ["a", "b"])

    def f(pair: Any, d: Any, xs: list[Any]) -> Any:
        g = lf.grad(lambda v: (v.sin() * pair.b).sum())(pair.a)
        return Pair(g, d["k"] * 2), OrderedDict(z=xs[0] + xs[1][0], y=None), [1, "s"]

    def g(pair: Any, d: Any, xs: list[Any]) -> Any:
        grad = tf.grad(lambda v: (v.sin() * pair.b).sum())(pair.a)
        return Pair(grad, d["k"] * 2), OrderedDict(z=xs[0] + xs[1][0], y=None), [1, "s"]

    c = lf.compile(f)
    for _ in range(2):
        args = (
            Pair(torch.randn(3), torch.randn(3)),
            OrderedDict(k=torch.randn(2)),
            [torch.ones(1), (torch.ones(1),)],
        )
        ours = c(*args)
        assert type(ours[0]) is Pair and type(ours[1]) is OrderedDict
        assert_trees_close(ours, g(*args))
    assert c.cache_info().hits == 1
