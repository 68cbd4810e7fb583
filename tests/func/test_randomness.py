"""vmap randomness modes: 'error' raises, 'same' shares one sample, 'different' draws per example."""

from __future__ import annotations

from typing import Any

import pytest
import torch
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
