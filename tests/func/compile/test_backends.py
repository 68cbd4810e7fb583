"""Backends: replay (CPU default), inductor (torch.compile), cuda_graph (skipped without CUDA)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf
from loom.func._compile._backends import inductor_available

from .._checks import assert_trees_close
from ._graph_checks import assert_flat_aten_graph

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# torch.func (the oracle) loads its forward-AD decompositions with torch.jit.script on first use.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


def hess(lib: object) -> object:
    return lib.hessian(lambda v: (v.sin() * v.cos().sum()).pow(2).sum())  # type: ignore[attr-defined]


def test_replay_is_the_default_on_cpu_and_runs_generated_code() -> None:
    c = lf.compile(hess(lf))
    x = torch.randn(5, dtype=torch.float64)
    assert_trees_close(c(x), hess(tf)(x))
    assert c.backend == "replay"


def test_cuda_graph_without_cuda_warns_and_replays() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    c = lf.compile(hess(lf), backend="cuda_graph")
    x = torch.randn(5, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"compile\(.*\): backend='cuda_graph' cannot be used: CUDA is not"):
        assert_trees_close(c(x), hess(tf)(x))
    assert c.backend == "replay"


@pytest.mark.slow
# torch's inductor uses its own deprecated helpers (torch._prims_common.check, torch.jit.script_method).
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.skipif(
    inductor_available() is not None, reason=f"torch.compile unavailable: {inductor_available()}"
)
def test_inductor_matches_eager_and_is_reused() -> None:
    w = torch.randn(8, 8)

    def step(x: torch.Tensor) -> torch.Tensor:
        _, vjp_fn = lf.vjp(lambda v: F.linear(v, w).tanh(), x)
        return lf.vmap(vjp_fn)(torch.eye(8))[0]

    def expected(x: torch.Tensor) -> torch.Tensor:
        _, vjp_fn = tf.vjp(lambda v: F.linear(v, w).tanh(), x)
        return tf.vmap(vjp_fn)(torch.eye(8))[0]

    c = lf.compile(step, backend="inductor")
    for _ in range(2):
        x = torch.randn(8)
        torch.testing.assert_close(c(x), expected(x), rtol=1e-5, atol=1e-5)
    info = c.cache_info()
    assert c.backend == "inductor" and info.hits == 1 and info.compile_seconds > 0
    assert_flat_aten_graph(c)


def _cuda_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(16, device="cuda"), torch.eye(16, device="cuda")


@cuda
def test_cuda_graph_matches_eager_with_fresh_inputs_and_is_the_cuda_default() -> None:
    w = torch.randn(16, 16, device="cuda")

    def jac(lib: object) -> object:
        def f(x: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
            _, vjp_fn = lib.vjp(lambda v: F.linear(v, w).tanh(), x)  # type: ignore[attr-defined]
            return lib.vmap(vjp_fn)(eye)[0]  # type: ignore[attr-defined]

        return f

    c = lf.compile(jac(lf))
    outs = []
    for _ in range(3):
        x, eye = _cuda_inputs()
        out = c(x, eye)
        torch.testing.assert_close(out, jac(tf)(x, eye))  # type: ignore[operator]
        outs.append(out)
    assert c.backend == "cuda_graph" and c.cache_info().hits == 2
    # Outputs are copies: a later replay does not overwrite an earlier result.
    assert not torch.equal(outs[0], outs[2])


@cuda
def test_cuda_graph_random_ops_are_fresh_per_replay_and_input_writes_are_copied_back() -> None:
    def f(x: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
        out = lf.vmap(lambda v: F.dropout(v, 0.5), randomness="different")(x)
        acc.add_(1.0)
        return out

    c = lf.compile(f, backend="cuda_graph")
    x = torch.ones(8, 64, device="cuda")
    acc = torch.zeros(3, device="cuda")
    first, second = c(x, acc), c(x, acc)
    assert c.backend == "cuda_graph"
    assert not torch.equal(first, second)
    assert not torch.equal(first[0], first[1])
    torch.testing.assert_close(acc, torch.full((3,), 2.0, device="cuda"))


@cuda
def test_cuda_graph_with_autograd_or_cpu_tensors_uses_replay() -> None:
    f = lf.grad(lambda v: v.sin().sum())
    c = lf.compile(f, backend="cuda_graph")
    x = torch.randn(4, device="cuda", requires_grad=True)
    with pytest.warns(UserWarning, match="records autograd"):
        out = c(x)
    torch.testing.assert_close(out, x.cos())
    assert out.requires_grad and c.backend == "replay"
    d = lf.compile(lambda a, b: lf.vmap(torch.mul)(a, b.to(a.device)), backend="cuda_graph")
    with pytest.warns(UserWarning, match="not all on one CUDA device"):
        d(torch.ones(3, device="cuda"), torch.ones(3))


@cuda
def test_cuda_dynamic_batch_and_per_sample_grads() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).cuda()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def build(lib: object) -> object:
        def loss(p: object, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            pred = lib.functional_call(model, p, (x.unsqueeze(0),))  # type: ignore[attr-defined]
            return F.cross_entropy(pred, y.unsqueeze(0))

        return lib.vmap(lib.grad(loss), in_dims=(None, 0, 0))  # type: ignore[attr-defined]

    c = lf.compile(build(lf), dynamic=True, backend="replay")
    for n in (4, 9):
        x, y = torch.randn(n, 5, device="cuda"), torch.randint(2, (n,), device="cuda")
        torch.testing.assert_close(c(params, x, y), build(tf)(params, x, y))  # type: ignore[operator]
    assert c.cache_info().misses == 1


@cuda
def test_cuda_graph_with_dynamic_shapes_captures_per_shape_without_retracing() -> None:
    c = lf.compile(lf.vmap(lf.grad(lambda v: (v.sin() * v).sum())), dynamic=True, backend="cuda_graph")
    for n in (4, 9, 4, 9):
        x = torch.randn(n, 3, device="cuda")
        torch.testing.assert_close(c(x), tf.vmap(tf.grad(lambda v: (v.sin() * v).sum()))(x))
    assert c.backend == "cuda_graph" and c.cache_info().misses == 1


@cuda
def test_cuda_graph_refuses_host_reads() -> None:
    c = lf.compile(lambda x: lf.vmap(torch.sin)(x) * x.max().item(), backend="cuda_graph")
    x = torch.randn(3, 4, device="cuda")
    with pytest.warns(UserWarning, match=r"reads tensor values on the host"):
        torch.testing.assert_close(c(x), x.sin() * x.max().item())


@cuda
def test_cuda_graph_reads_unchanged_inputs_in_place_and_sees_their_updates() -> None:
    # NOTE [inputs read in place]: w keeps its memory from call to call, so after two calls the graph reads
    # it where it is; x is new every call and is copied. In-place updates to w must be seen, and a call with
    # a different w tensor (or a view with other strides) must run the copying graph, not the stale memory.
    def f(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return lf.vmap(lambda row: (row @ w).relu())(x)

    c = lf.compile(f, backend="cuda_graph")
    w = torch.randn(8, 5, device="cuda")
    for step in range(6):
        x = torch.randn(4, 8, device="cuda")
        torch.testing.assert_close(c(w, x), (x @ w).relu())
        if step == 3:
            w.add_(1.0)  # an optimizer-style update between calls
    runner = next(iter(c._cache.values()))[0].run  # type: ignore[attr-defined]
    assert runner.in_place is not None and runner.in_place.in_place == frozenset({0})
    other = torch.randn(8, 5, device="cuda")
    torch.testing.assert_close(c(other, x), (x @ other).relu())
    transposed = torch.randn(5, 8, device="cuda").t()
    torch.testing.assert_close(c(transposed, x), (x @ transposed).relu())
    torch.testing.assert_close(c(w, x), (x @ w).relu())
