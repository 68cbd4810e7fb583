"""torch's OpInfo database through vmap and vmap(grad), compared with per-example loops: no wrong results.

Errors (unsupported patterns such as .item()) are allowed and counted; a result that differs from the loop
fails. Run ``python tests/func/test_opinfo_sweep.py`` for the report over every sample (paths taken: rule,
decomposition, fallback). Needs ``expecttest`` (imported by torch's OpInfo module).
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import loom.func as lf
from loom.func._batched import PATH_USED

BATCH = 3
# Uninitialized memory: two runs never agree.
UNDEFINED_VALUES = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}


def _batched_inputs(args: list[Any]) -> list[Any]:
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            step = 0.01 if a.is_floating_point() or a.is_complex() else 0
            out.append(torch.stack([a.clone() + i * step if step else a.clone() for i in range(BATCH)]))
        else:
            out.append(a)
    return out


def sweep(samples_per_op: int) -> tuple[collections.Counter[str], list[str]]:
    """(outcome counts, names of ops with a wrong result)."""
    from torch.testing._internal.common_methods_invocations import op_db

    counts: collections.Counter[str] = collections.Counter()
    wrong = []
    for opinfo in op_db:
        if opinfo.name in UNDEFINED_VALUES:
            continue
        try:
            samples = list(opinfo.sample_inputs("cpu", torch.float64, requires_grad=False))[:samples_per_op]
        except Exception:
            counts["no samples"] += 1
            continue
        for s in samples:
            args = [s.input, *s.args]
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if not isinstance(s.input, torch.Tensor) or any(t.layout != torch.strided for t in tensors):
                continue
            if any(isinstance(v, torch.Tensor) for v in s.kwargs.values()):
                continue
            try:
                batched = _batched_inputs(args)
            except Exception:
                counts["cannot batch inputs"] += 1
                continue
            in_dims = tuple(0 if isinstance(a, torch.Tensor) else None for a in args)

            def call(*xs: Any, op: Any = opinfo.op, kwargs: Any = s.kwargs) -> Any:
                return op(*xs, **kwargs)

            try:
                expected = [
                    call(*[b[i] if isinstance(b, torch.Tensor) else b for b in batched]) for i in range(BATCH)
                ]
            except Exception:
                counts["loop error"] += 1
                continue
            try:
                got = lf.vmap(call, in_dims)(*batched)
            except Exception:
                counts["vmap error"] += 1
                continue
            try:
                ok = _same(got, expected)
            except Exception:
                counts["cannot compare"] += 1
                continue
            counts["ok" if ok else "WRONG"] += 1
            if not ok:
                wrong.append(
                    opinfo.name + ("." + opinfo.variant_test_name if opinfo.variant_test_name else "")
                )
    return counts, wrong


def _same(got: Any, expected: list[Any]) -> bool:
    leaves = torch.utils._pytree.tree_leaves(got)
    per_example = [torch.utils._pytree.tree_leaves(e) for e in expected]
    for j, g in enumerate(leaves):
        if isinstance(g, torch.Tensor):
            exp = torch.stack([p[j] for p in per_example])
            if g.shape != exp.shape or g.dtype != exp.dtype:
                return False
            if not torch.allclose(g, exp, rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
    return True


def sweep_grad(samples_per_op: int) -> tuple[collections.Counter[str], list[str]]:
    """vmap(grad(f)) against a loop of torch.func.grad, f = a weighted sum of the op's floating outputs."""
    import torch.func as tf
    from torch.testing._internal.common_methods_invocations import op_db

    counts: collections.Counter[str] = collections.Counter()
    wrong = []
    for opinfo in op_db:
        if not opinfo.supports_autograd:
            continue
        try:
            samples = list(opinfo.sample_inputs("cpu", torch.float64, requires_grad=False))[:samples_per_op]
        except Exception:
            continue
        for s in samples:
            x = s.input
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.layout != torch.strided:
                continue
            if any(isinstance(v, torch.Tensor) for v in s.kwargs.values()):
                continue

            def f(
                v: torch.Tensor, op: Any = opinfo.op, rest: Any = s.args, kw: Any = s.kwargs
            ) -> torch.Tensor:
                leaves = [
                    o
                    for o in torch.utils._pytree.tree_leaves(op(v, *rest, **kw))
                    if isinstance(o, torch.Tensor) and o.is_floating_point()
                ]
                total = v.sum() * 0
                for o in leaves:
                    total = total + (o * o.detach().cos()).sum()
                return total

            xs = torch.stack([x + 0.01 * i for i in range(BATCH)])
            try:
                expected = torch.stack([tf.grad(f)(xs[i]) for i in range(BATCH)])
            except Exception:
                counts["loop error"] += 1
                continue
            try:
                got = lf.vmap(lf.grad(f))(xs)
            except Exception:
                counts["vmap error"] += 1
                continue
            ok = got.shape == expected.shape and torch.allclose(
                got, expected, rtol=1e-5, atol=1e-6, equal_nan=True
            )
            counts["ok" if ok else "WRONG"] += 1
            if not ok:
                wrong.append(
                    opinfo.name + ("." + opinfo.variant_test_name if opinfo.variant_test_name else "")
                )
    return counts, wrong


@pytest.fixture
def _silent_fallback() -> Iterator[None]:
    previous = lf.set_vmap_fallback("silent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    lf.set_vmap_fallback(previous)


@pytest.mark.slow
@pytest.mark.usefixtures("_silent_fallback")
def test_opinfo_vmap_has_no_wrong_results() -> None:
    pytest.importorskip("expecttest")
    counts, wrong = sweep(samples_per_op=1)
    assert counts["ok"] > 500, counts
    assert not wrong, f"vmap differs from the per-example loop for: {sorted(set(wrong))}"


@pytest.mark.slow
@pytest.mark.usefixtures("_silent_fallback")
def test_opinfo_vmap_of_grad_has_no_wrong_results() -> None:
    pytest.importorskip("expecttest")
    counts, wrong = sweep_grad(samples_per_op=1)
    assert counts["ok"] > 300, counts
    assert not wrong, f"vmap(grad) differs from the per-example loop for: {sorted(set(wrong))}"


if __name__ == "__main__":
    lf.set_vmap_fallback("silent")
    warnings.simplefilter("ignore")
    counts, wrong = sweep(samples_per_op=100)
    print("vmap:", dict(counts))
    print("wrong:", sorted(set(wrong)))
    counts, wrong = sweep_grad(samples_per_op=3)
    print("vmap(grad):", dict(counts))
    print("wrong:", sorted(set(wrong)))
    print("paths:", dict(collections.Counter(PATH_USED.values())))
