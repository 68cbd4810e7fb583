"""BatchNorm under vmap: per-example statistics by folding the batch into the channels.

Training with running stats that are not batched would write every example's statistics into one buffer:
that is an error, pointing at ``replace_all_batch_norm_modules_``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._table import batch_rule, batch_size_of, current_level, materialize

aten = torch.ops.aten


def _channels(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C, *S) -> (N, B*C, *S)."""
    x = x.movedim(0, 1)
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])


def _unchannels(y: torch.Tensor, size: int) -> torch.Tensor:
    return y.reshape(y.shape[0], size, y.shape[1] // size, *y.shape[2:]).movedim(1, 0)


def _flat(t: Any, bdim: Any, size: int) -> Any:
    if t is None or t.numel() == 0:
        return t
    return materialize(t, bdim, size).reshape(-1)


def _unflat(t: torch.Tensor, size: int) -> torch.Tensor:
    return t.reshape(size, -1) if t.numel() else t


def _check_running_stats(args: Any, bdims: Any, training: bool, name: str) -> None:
    running = args[3] if len(args) > 3 else None
    if training and running is not None and bdims[3] is None and bdims[0] is not None:
        raise RuntimeError(
            f"{current_level().call}: {name} in training mode would update running_mean/running_var, which "
            "are not batched, with per-example statistics. Use loom.func.replace_all_batch_norm_modules_("
            "model) to stop tracking running stats, put the module in eval mode, or pass batched buffers"
        )


def _forward(op: Any, training_index: int | None) -> Any:
    def rule(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
        training = True if training_index is None else bool(args[training_index])
        _check_running_stats(args, bdims, training, "batch_norm")
        size = batch_size_of(args, bdims)
        x = materialize(args[0], bdims[0], size)
        if x.dim() - 1 < 2:
            return NotImplemented, None
        new = [_channels(x), *[_flat(a, b, size) for a, b in zip(args[1:5], bdims[1:5])], *args[5:]]
        out = op(*new, **kwargs)
        return (_unchannels(out[0], size), *[_unflat(o, size) for o in out[1:]]), tuple(
            0 if o.numel() else None for o in out
        )

    return rule


batch_rule(aten.native_batch_norm.default)(_forward(aten.native_batch_norm.default, 5))
batch_rule(aten._native_batch_norm_legit.default)(_forward(aten._native_batch_norm_legit.default, 5))
batch_rule(aten._batch_norm_with_update.default)(_forward(aten._batch_norm_with_update.default, None))


@batch_rule(aten._native_batch_norm_legit_no_training.default)
def no_training(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    size = batch_size_of(args, bdims)
    x = materialize(args[0], bdims[0], size)
    new = [_channels(x), *[_flat(a, b, size) for a, b in zip(args[1:5], bdims[1:5])], *args[5:]]
    out = aten._native_batch_norm_legit_no_training.default(*new, **kwargs)
    return (_unchannels(out[0], size), *[_unflat(o, size) for o in out[1:]]), tuple(
        0 if o.numel() else None for o in out
    )


@batch_rule(aten.native_batch_norm_backward.default)
def native_batch_norm_backward(args: Any, bdims: Any, **kwargs: Any) -> tuple[Any, Any]:
    go, x, w, rm, rv, sm, si, train, eps, mask = args
    size = batch_size_of(args, bdims)
    new = [
        _channels(materialize(go, bdims[0], size)),
        _channels(materialize(x, bdims[1], size)),
        *[_flat(a, b, size) for a, b in zip((w, rm, rv, sm, si), bdims[2:7])],
        train,
        eps,
        mask,
    ]
    gi, gw, gb = aten.native_batch_norm_backward.default(*new)
    outs = (
        None if gi is None else _unchannels(gi, size),
        None if gw is None else _unflat(gw, size),
        None if gb is None else _unflat(gb, size),
    )
    return outs, tuple(None if o is None else 0 for o in outs)
