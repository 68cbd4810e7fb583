"""gather, scatter, index_select, advanced indexing (index / index_put) and embedding under vmap and vmap(vjp)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

from ._rule_checks import assert_rule_used, check_all, check_vmap, check_vmap_vjp

pytestmark = pytest.mark.usefixtures("float64")
aten = torch.ops.aten


def _unique_index(*shape: int, high: int, dim: int) -> torch.Tensor:
    """Indices < high with no repeats along ``dim`` (scatter without add is only defined for unique ones)."""
    full = list(shape)
    full[dim] = high
    return torch.rand(full).argsort(dim=dim).narrow(dim, 0, shape[dim])


def test_gather() -> None:
    x = torch.randn(3, 4, 5)
    i = torch.randint(5, (3, 4, 2))
    f = lambda a, b: torch.gather(a, -1, b)  # noqa: E731
    check_all(f, [x, i], (0, 0), n_diff=1)
    check_all(f, [x, i[0]], (0, None), n_diff=1)
    check_all(f, [x[0], i], (None, 0), n_diff=1)
    check_all(f, [x.movedim(0, 2), i.movedim(0, 1)], (2, 1), n_diff=1)
    check_all(lambda a, b: torch.gather(a, 0, b), [x[:, 0], i[:, 0]], (0, 0), n_diff=1)
    check_all(
        lambda a, b: torch.gather(a, 0, b), [x[:, 0, 0], torch.zeros(3, dtype=torch.long)], (0, 0), n_diff=1
    )
    assert_rule_used(aten.gather.default)


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # torch.func's, for scatter_
@pytest.mark.parametrize("name", ["scatter", "scatter_value", "scatter_add", "scatter_reduce_sum", "inplace"])
def test_scatter(name: str) -> None:
    x = torch.randn(3, 4, 6)
    src = torch.randn(3, 4, 3)
    i = _unique_index(3, 4, 3, high=6, dim=2)
    funcs: dict[str, Callable[..., Any]] = {
        "scatter": lambda a, s, b: a.scatter(-1, b, s),
        "scatter_value": lambda a, s, b: a.scatter(2 - 3, b, 1.5) * s.sum(),
        "scatter_add": lambda a, s, b: a.scatter_add(-1, torch.randint(6, (4, 3)) if b is None else b, s),
        "scatter_reduce_sum": lambda a, s, b: a.scatter_reduce(1, b, s, "sum", include_self=False),
        "inplace": lambda a, s, b: (a * 2 + s.sum()).scatter_add_(-1, b, s).scatter_(-1, b, s * 3),
    }
    f = funcs[name]
    if name == "scatter_reduce_sum":
        i = torch.randint(4, (3, 4, 3))
    check_all(f, [x, src, i], (0, 0, 0), n_diff=2)
    check_all(f, [x, src, i[0]], (0, 0, None), n_diff=2)
    check_all(f, [x[0], src, i], (None, 0, 0), n_diff=2)
    check_all(f, [x.movedim(0, 1), src[0], i.movedim(0, -1)], (1, None, -1), n_diff=2)
    assert_rule_used(aten.scatter.src, aten.scatter_add.default)


def test_index_select() -> None:
    x = torch.randn(3, 4, 5)
    i = torch.randint(4, (3, 6))
    f = lambda a, b: a.index_select(-2, b)  # noqa: E731
    check_all(f, [x, i], (0, 0), n_diff=1)
    check_all(f, [x, i[0]], (0, None), n_diff=1)  # its vjp writes into new_zeros in place: batched buffer
    check_all(f, [x[0], i], (None, 0), n_diff=1)
    check_all(f, [x.movedim(0, 2), i.movedim(0, 1)], (2, 1), n_diff=1)
    # A logically 0-dim index selects one entry; torch.func's vmap broadcasts it over the dim instead.
    check_all(lambda a, b: a.index_select(0, b), [x[:, 0], i[:, 0]], (0, 0), n_diff=1, torch_func=False)
    assert_rule_used(aten.index_select.default)


def test_index_add() -> None:
    x, src = torch.randn(3, 4, 5), torch.randn(3, 4, 7)
    i = torch.randint(5, (3, 7))
    f = lambda a, s, b: a.index_add(-1, b, s, alpha=0.5)  # noqa: E731
    check_all(f, [x, src, i], (0, 0, 0), n_diff=2)
    check_all(f, [x, src, i[0]], (0, 0, None), n_diff=2)
    check_all(f, [x[0], src[0], i], (None, None, 0), n_diff=2)
    check_all(f, [x.movedim(0, 1), src[0], i.movedim(0, 1)], (1, None, 1), n_diff=2)
    check_all(lambda a, s, b: (a * 1).index_add_(0, b, s), [x[:, 0], src[:, 0], i], (0, 0, 0), n_diff=2)
    assert_rule_used(aten.index_add.default, aten.index_add_.default)


INDEX_CASES: dict[str, Callable[..., Any]] = {
    "first": lambda a, i, j: a[i],
    "second": lambda a, i, j: a[:, i],
    "adjacent pair": lambda a, i, j: a[:, i, j],
    "pair at front": lambda a, i, j: a[i, j],
    "split pair": lambda a, i, j: a[i, :, j],
    "with None": lambda a, i, j: a[None, i, :, j.clamp(max=3)],
    "broadcast": lambda a, i, j: a[i.unsqueeze(-1), :, j[:2]],
}


@pytest.mark.parametrize("name", sorted(INDEX_CASES))
def test_index(name: str) -> None:
    f = INDEX_CASES[name]
    x = torch.randn(3, 4, 5, 6)
    i = torch.randint(-4, 4, (3, 2))
    j = torch.randint(5, (3, 2))
    for dims in [(0, 0, 0), (0, None, None), (None, 0, None), (0, None, 0), (2, 1, None)]:
        args = [x.movedim(0, dims[0]) if dims[0] is not None else x[0], i if dims[1] is not None else i[0]]
        args.append(j if dims[2] is not None else j[0])
        if dims[1] == 1:
            args[1] = i.movedim(0, 1)
        check_all(f, args, dims, n_diff=1)
    assert_rule_used(aten.index.Tensor)


def test_index_bool_mask() -> None:
    x = torch.randn(3, 4, 5)
    mask = torch.rand(4, 5) > 0.5
    check_all(lambda a, m: a[m], [x, mask], (0, None), n_diff=1)
    check_all(lambda a, m: a[:, m[0]], [x, mask], (0, None), n_diff=1)


PUT_CASES: dict[str, Callable[..., Any]] = {
    "index_put": lambda a, v, i, j: a.index_put((i,), v),
    "accumulate": lambda a, v, i, j: a.index_put((i,), v, accumulate=True),
    "setitem": lambda a, v, i, j: _setitem(a, (slice(None), i, j), v[:, :4, 0].T),
    "split setitem": lambda a, v, i, j: _setitem(a, (i, slice(None), j), v[:, :, 0]),
    "value broadcast": lambda a, v, i, j: _setitem(a, (slice(None), i), v[None, :, 0, :1]),
}


def _setitem(a: torch.Tensor, key: Any, v: torch.Tensor) -> torch.Tensor:
    out = a * 1
    out[key] = v
    return out


@pytest.mark.parametrize("name", sorted(PUT_CASES))
def test_index_put(name: str) -> None:
    f = PUT_CASES[name]
    x = torch.randn(3, 4, 5, 6)
    i = torch.stack([torch.randperm(4)[:2] for _ in range(3)])
    j = torch.stack([torch.randperm(5)[:2] for _ in range(3)])
    if name == "accumulate":
        i = torch.randint(4, (3, 3))
    v = torch.randn(3, i.shape[1], 5, 6)
    for dims in [
        (0, 0, 0, 0),
        (0, 0, None, None),
        (0, None, 0, 0),
        (None, 0, None, None),
        (None, None, 0, 0),
    ]:
        if dims[0] is None and ("setitem" in name or "broadcast" in name):
            continue  # writing per-example values into one shared tensor in place is an error
        args = [t if d is not None else t[0] for t, d in zip([x, v, i, j], dims)]
        # torch.func's index_put_ rule raises for batched indices after a slice and for split indices; the
        # per-example loop is the oracle there.
        oracle = name in ("index_put", "accumulate") or (dims[2] is None and name != "split setitem")
        check_all(f, args, dims, n_diff=2, torch_func=oracle)
    args = [x.movedim(0, 3), v[0], i.movedim(0, 1), j[0]]
    check_all(f, args, (3, None, 1, None), n_diff=2, torch_func=name in ("index_put", "accumulate"))


def test_index_put_bool_mask() -> None:
    x = torch.randn(3, 4, 5)
    mask = torch.rand(4, 5) > 0.5
    check_all(lambda a, m: _setitem(a, m, torch.tensor(2.0)), [x, mask], (0, None), n_diff=1)
    check_all(
        lambda a, v, m: a.masked_fill(m, 0.0) + torch.where(m, v, a), [x, x[0], mask], (0, None, None), 2
    )
    check_all(lambda a, v, m: torch.where(m, v, a), [x, x.flip(0), x > 0], (0, 0, 0), n_diff=2)


@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("scale", [False, True])
def test_embedding(padding_idx: int | None, scale: bool) -> None:
    w = torch.randn(3, 7, 4)
    idx = torch.randint(7, (3, 5, 2))
    idx[:, 0, 0] = 2
    idx[:, 1, 0] = 2
    f = lambda a, i: F.embedding(i, a, padding_idx=padding_idx, scale_grad_by_freq=scale)  # noqa: E731
    check_all(f, [w, idx], (0, 0), n_diff=1)
    check_all(f, [w, idx[0]], (0, None), n_diff=1)
    check_all(f, [w[0], idx], (None, 0), n_diff=1)
    check_all(f, [w.movedim(0, 2), idx.movedim(0, 1)], (2, 1), n_diff=1)
    assert_rule_used(aten.embedding.default, aten.embedding_dense_backward.default)


def test_embedding_vmap_only() -> None:
    check_vmap(lambda i, w: F.embedding(i, w), [torch.randint(7, (4, 3)), torch.randn(7, 2)], (0, None))


# Per-example gradients with an index shared by all examples: the backward formulas allocate with new_zeros
# (or zeros_like) and write per-example values into that buffer in place. See NOTE [new_* factories are
# batched] in loom.func._rules.core.
SHARED_INDEX_LOSSES: dict[str, Callable[..., Any]] = {
    "index_select": lambda w, i: (w.index_select(0, i) ** 2).sum(),
    "gather": lambda w, i: (torch.gather(w, 1, i.reshape(1, -1).expand(5, -1)).sin()).sum(),
    "scatter": lambda w, i: w.scatter(0, i[:2].reshape(2, 1).expand(2, 3), w[:2].exp()).pow(2).sum(),
    "scatter_add": lambda w, i: (
        torch.zeros(4, 3).scatter_add(0, i.reshape(-1, 1).expand(-1, 3), w[:4]).cos().sum()
    ),
    "embedding": lambda w, i: F.embedding(i.reshape(2, 2), w).tanh().sum(),
    "embedding_padding": lambda w, i: F.embedding(i, w, padding_idx=2).pow(3).sum(),
    "index": lambda w, i: w[i].pow(2).sum(),
    "select_and_slice": lambda w, i: (w[1] * w[2:4].sum(0)).sum() + w[:, 1:].exp().sum(),
}


@pytest.mark.parametrize("name", sorted(SHARED_INDEX_LOSSES))
def test_per_example_grads_with_shared_index(name: str) -> None:
    loss = SHARED_INDEX_LOSSES[name]
    w = torch.randn(4, 5, 3)
    i = torch.tensor([0, 2, 2, 1])
    ours = lf.vmap(lf.grad(loss), in_dims=(0, None))(w, i)
    torch.testing.assert_close(ours, tf.vmap(tf.grad(loss), in_dims=(0, None))(w, i))
    torch.testing.assert_close(ours, torch.stack([tf.grad(loss)(w[b], i) for b in range(4)]))
    check_vmap_vjp(loss, [w, i], (0, None), n_diff=1)
