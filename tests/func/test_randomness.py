"""vmap randomness modes: 'error' raises, 'same' shares one sample, 'different' draws per example.

Calls with no batched input (factories, samplers on unbatched tensors) are checked against torch.func too.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

import loom.func as lf

CASES: dict[str, Any] = {
    "rand_like": lambda x: torch.rand_like(x),
    "randn_like": lambda x: torch.randn_like(x) + x * 0,
    "dropout": lambda x: F.dropout(x + 1, 0.5, training=True),
    "bernoulli": lambda x: torch.bernoulli(torch.full_like(x, 0.5) + x * 0),
    "normal_": lambda x: x.clone().normal_(),
    "uniform_": lambda x: x.clone().uniform_(),
    "bernoulli_": lambda x: x.clone().bernoulli_(0.5),
    "normal(tensor)": lambda x: torch.normal(x, 1.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_mode_raises(name: str) -> None:
    with pytest.raises(RuntimeError, match=r"vmap\(<lambda>\)\(Tensor\[6, 50\]\): called random operation"):
        lf.vmap(CASES[name])(torch.zeros(6, 50))


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_and_different(name: str) -> None:
    torch.manual_seed(0)
    x = torch.zeros(6, 50)
    same = lf.vmap(CASES[name], randomness="same")(x)
    assert same.shape == (6, 50)
    assert torch.equal(same, same[:1].expand_as(same)), (
        "randomness='same' must give every example the same values"
    )
    different = lf.vmap(CASES[name], randomness="different")(x)
    assert different.shape == (6, 50)
    assert not torch.equal(different[0], different[1]), "randomness='different' must differ across examples"
    assert not torch.equal(different[0], different[0].flatten()[0].expand(50)), (
        "values within an example differ"
    )


@pytest.mark.parametrize(
    "factory", [lambda: torch.randn(3), lambda: torch.rand(3, 2), lambda: torch.randint(0, 100, (4,))]
)
def test_factory_functions(factory: Any) -> None:
    x = torch.zeros(5)
    same = lf.vmap(lambda a: factory() + a, randomness="same")(x)
    assert torch.equal(same, same[:1].expand_as(same))
    different = lf.vmap(lambda a: factory() + a, randomness="different")(x)
    assert not torch.equal(different[0], different[1])


def test_dropout_statistics_and_nested_different() -> None:
    torch.manual_seed(0)
    out = lf.vmap(lambda a: F.dropout(a, 0.25, training=True), randomness="different")(torch.ones(200, 100))
    kept = (out != 0).float().mean().item()
    assert 0.70 < kept < 0.80
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.75))
    nested = lf.vmap(lf.vmap(lambda a: torch.randn(2) + a, randomness="different"), randomness="different")(
        torch.zeros(3, 4)
    )
    assert nested.shape == (3, 4, 2)
    assert len({tuple(v.tolist()) for v in nested.reshape(12, 2)}) == 12


def test_jacfwd_randomness() -> None:
    x = torch.randn(4)
    jac = lf.jacfwd(lambda v: v * torch.ones(4), randomness="same")(x)
    assert torch.equal(jac, torch.eye(4))


_U = torch.ones(3)
# Random calls that reach no batched tensor: factories, *_like and in-place samplers on unbatched tensors,
# dropout of an unbatched tensor (and dropout calls that draw nothing).
UNBATCHED: dict[str, Any] = {
    "randn": lambda x: x + torch.randn(3),
    "randn(size=)": lambda x: x + torch.randn(size=(3,), dtype=torch.float64).float(),
    "rand": lambda x: x + torch.rand(1, 3)[0],
    "randint": lambda x: x + torch.randint(0, 10, (3,)),
    "randint(size=)": lambda x: x + torch.randint(10, size=(3,)),
    "randperm": lambda x: x + torch.randperm(3),
    "normal(floats, size)": lambda x: x + torch.normal(0.0, 1.0, (3,)),
    "normal(tensor)": lambda x: x + torch.normal(_U, 1.0),
    "randn_like": lambda x: x + torch.randn_like(_U),
    "rand_like": lambda x: x + torch.rand_like(_U),
    "normal_": lambda x: x + torch.empty(3).normal_(),
    "uniform_": lambda x: x + torch.empty(3).uniform_(),
    "bernoulli_": lambda x: x + torch.empty(3).bernoulli_(0.5),
    "bernoulli": lambda x: x + torch.bernoulli(_U * 0.5),
    "Tensor.bernoulli": lambda x: x + (_U * 0.5).bernoulli(),
    "multinomial": lambda x: x + torch.multinomial(_U, 3),
    "dropout": lambda x: x + F.dropout(_U, 0.5, training=True),
    "dropout eval": lambda x: x + F.dropout(_U, 0.5, training=False),
    "dropout p=0": lambda x: x + F.dropout(_U, 0.0),
    "dropout of batched, eval": lambda x: F.dropout(x, 0.5, training=False),
    "torch.dropout": lambda x: x + torch.dropout(_U, 0.5, True),
    "alpha_dropout default (eval)": lambda x: x + F.alpha_dropout(_U, 0.5),
    "alpha_dropout training": lambda x: x + F.alpha_dropout(_U, 0.5, training=True),
    "dropout2d": lambda x: x + F.dropout2d(_U.reshape(1, 3, 1, 1), 0.5).flatten(),
}


def _outcome(lib: Any, func: Any, mode: str) -> str:
    torch.manual_seed(0)
    try:
        out = lib.vmap(func, randomness=mode)(torch.zeros(6, 3))
    except RuntimeError as e:
        return f"error: {e}"
    assert out.shape == (6, 3)
    return "same" if torch.equal(out, out[:1].expand_as(out)) else "different"


@pytest.mark.parametrize("mode", ["error", "same", "different"])
@pytest.mark.parametrize("name", sorted(UNBATCHED))
def test_unbatched_random_calls_match_torch_func(name: str, mode: str) -> None:
    ours, theirs = _outcome(lf, UNBATCHED[name], mode), _outcome(tf, UNBATCHED[name], mode)
    assert ours.split(":")[0] == theirs.split(":")[0], f"loom: {ours}\ntorch.func: {theirs}"
    if mode == "error" and ours.startswith("error"):
        assert "vmap(<lambda>)(Tensor[6, 3]): called random operation" in ours
        assert "randomness='error'" in ours
    if mode == "different" and ours.startswith("error"):
        assert "in-place random op" in ours and "not batched" in ours


def test_different_randperm_gives_permutations() -> None:
    out = lf.vmap(lambda x: x + torch.randperm(5), randomness="different")(torch.zeros(50, 5))
    assert torch.equal(out.sort(dim=1).values, torch.arange(5.0).expand(50, 5))
    assert len({tuple(r.tolist()) for r in out}) > 10


def test_error_mode_names_the_call_in_nested_vmap() -> None:
    inner = lf.vmap(lambda x: x + torch.rand(()))
    with pytest.raises(RuntimeError, match=r"called random operation torch\.rand while"):
        lf.vmap(inner, randomness="same")(torch.zeros(2, 3))
    same_outer = lf.vmap(lf.vmap(lambda x: x + torch.rand(()), randomness="same"), randomness="different")
    out = same_outer(torch.zeros(4, 3))
    assert torch.equal(out, out[:, :1].expand_as(out)) and not torch.equal(out[0], out[1])
