"""Random ops under vmap's three randomness modes. See NOTE [randomness modes] in ``loom.func._random``."""

from __future__ import annotations

from typing import Any

import torch

from ._table import RULES, Rule, batch_rule, current_level, pad_to_rank, to_front

aten = torch.ops.aten


def random_error(op: Any) -> None:
    """Raise the randomness='error' message for ``op``."""
    raise RuntimeError(
        f"{current_level().call}: called random operation {op} while in randomness='error' mode. Pass "
        "randomness='same' (one sample for the whole batch) or 'different' (one per example) to vmap, or "
        "perform the random operation outside vmap"
    )


def _logical_sample_like(x: torch.Tensor, bdim: Any) -> torch.Tensor:
    """An uninitialized tensor with one example's shape, dtype and device."""
    return torch.empty(x.shape[1:] if bdim is not None else x.shape, dtype=x.dtype, device=x.device)


def _mode_rule(different: Rule, same: Rule, op: Any) -> Rule:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        mode = current_level().randomness
        if mode == "different":
            return different(args, bdims, **kwargs)
        if mode == "same":
            return same(args, bdims, **kwargs)
        random_error(op)
        raise AssertionError("unreachable")

    return rule


def _on_physical(op: Any) -> Rule:
    """'different': the op on the physical tensors draws independent values for every element."""

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        rank = max(a.dim() - (b is not None) for a, b in zip(args, bdims) if isinstance(a, torch.Tensor))
        new = [pad_to_rank(to_front(a, b), rank) if b is not None else a for a, b in zip(args, bdims)]
        return op(*new, **kwargs), 0

    return rule


def _like_same(op: Any) -> Rule:
    """'same' for ``*_like`` factories: one example's worth, unbatched."""

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        return op(_logical_sample_like(args[0], bdims[0]), *args[1:], **kwargs), None

    return rule


def _inplace_same(op: Any) -> Rule:
    """'same' for in-place samplers (``normal_``, ``bernoulli_.float``...): draw once, copy to every example."""

    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        self = to_front(args[0], bdims[0])
        if any(b is not None for b in bdims[1:]):
            # A batched parameter (bernoulli_(p_tensor)): share the uniform draws instead.
            u = torch.rand(self.shape[1:], dtype=torch.float32, device=self.device)
            p = pad_to_rank(to_front(args[1], bdims[1]), self.dim() - 1)
            self.copy_((u < p).to(self.dtype))
            return self, 0
        sample = op(_logical_sample_like(self, 0), *args[1:], **kwargs)
        self.copy_(sample)
        return self, 0

    return rule


for _packet in (aten.rand_like, aten.randn_like, aten.randint_like):
    for _name in _packet.overloads():  # type: ignore[no-untyped-call]
        _ov = getattr(_packet, _name)
        RULES[_ov] = _mode_rule(_on_physical(_ov), _like_same(_ov), _ov)
for _packet in (
    aten.normal_,
    aten.uniform_,
    aten.random_,
    aten.exponential_,
    aten.cauchy_,
    aten.log_normal_,
    aten.geometric_,
    aten.bernoulli_,
):
    for _name in _packet.overloads():  # type: ignore[no-untyped-call]
        _ov = getattr(_packet, _name)
        RULES[_ov] = _mode_rule(_on_physical(_ov), _inplace_same(_ov), _ov)


def _bernoulli_same(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    p = to_front(args[0], bdims[0])
    u = torch.rand(p.shape[1:], dtype=p.dtype, device=p.device)
    return (u < p).to(p.dtype), 0


RULES[aten.bernoulli.default] = _mode_rule(
    _on_physical(aten.bernoulli.default), _bernoulli_same, aten.bernoulli.default
)


def _bernoulli_p_same(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = args[0]
    return aten.bernoulli.p(_logical_sample_like(x, bdims[0]), *args[1:], **kwargs), None


RULES[aten.bernoulli.p] = _mode_rule(_on_physical(aten.bernoulli.p), _bernoulli_p_same, aten.bernoulli.p)


def _dropout_same(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    x = to_front(args[0], bdims[0])
    p, train = args[1], args[2] if len(args) > 2 else True
    if not train:
        return (x, torch.ones_like(x, dtype=torch.bool)), 0
    keep = torch.rand(x.shape[1:], device=x.device) >= p
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
    return (x * keep * scale, keep.expand(x.shape)), 0


RULES[aten.native_dropout.default] = _mode_rule(
    _on_physical(aten.native_dropout.default), _dropout_same, aten.native_dropout.default
)


def _normal_same(op: Any) -> Rule:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        mean: Any = args[0]
        std: Any = args[1] if len(args) > 1 else 1.0
        mb = bdims[0] if isinstance(mean, torch.Tensor) else None
        sb = bdims[1] if isinstance(std, torch.Tensor) else None
        ref = to_front(mean, mb) if mb is not None else to_front(std, sb)
        noise = torch.randn(ref.shape[1:], dtype=ref.dtype, device=ref.device)
        m = pad_to_rank(to_front(mean, mb), noise.dim()) if mb is not None else mean
        s = pad_to_rank(to_front(std, sb), noise.dim()) if sb is not None else std
        return m + s * noise, 0

    return rule


for _name in ("Tensor_float", "float_Tensor", "Tensor_Tensor"):
    _ov = getattr(aten.normal, _name)
    RULES[_ov] = _mode_rule(_on_physical(_ov), _normal_same(_ov), _ov)


@batch_rule(aten.multinomial.default)
def multinomial(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    level = current_level()
    if level.randomness == "error":
        random_error(aten.multinomial.default)
    if level.randomness == "same":
        raise NotImplementedError(f"{level.call}: multinomial with randomness='same' is not supported")
    probs = to_front(args[0], bdims[0])
    flat = probs.reshape(-1, probs.shape[-1])
    out = aten.multinomial.default(flat, *args[1:], **kwargs)
    return out.reshape(*probs.shape[:-1], out.shape[-1]), 0
