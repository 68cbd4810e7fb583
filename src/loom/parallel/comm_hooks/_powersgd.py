"""PowerSGD: low-rank gradient compression with error feedback (Vogels et al., 2019)."""

from __future__ import annotations

from typing import Any

import torch

from loom.parallel import _comm
from loom.parallel._grad_bucket import GradBucket
from loom.parallel.comm_hooks._default import allreduce_hook

# NOTE [PowerSGD runs synchronously inside the hook]
# One PowerSGD step needs three collectives in sequence (uncompressed tensors, P, Q) with local math
# between them. Chaining them through future callbacks would launch collectives from communication
# threads, where their order across ranks is no longer guaranteed; Gloo then mismatches or hangs. The hook
# therefore waits for each step itself and returns a completed future: the bucket's communication no
# longer overlaps the rest of backward, which PowerSGD's much smaller messages make up for.


class PowerSGDState:
    """State of :func:`powerSGD_hook`: settings, per-bucket error feedback and warm-start factors.

    Args:
        process_group: the group to average over; ``None`` for the world.
        matrix_approximation_rank: rank ``r`` of the approximation ``P @ Q.T`` of each gradient matrix.
        start_powerSGD_iter: iterations of plain all-reduce before compression starts (error feedback
            works best after the first steps).
        min_compression_rate: compress a ``n x m`` matrix only if ``n * m > min_compression_rate * (n + m) * r``.
        use_error_feedback: add what compression lost last time to this iteration's gradient.
        warm_start: start each power iteration from last iteration's ``Q``.
        orthogonalization_epsilon: added to column norms while orthogonalizing ``P``.
        random_seed: seed of the initial ``Q`` matrices.

    Raises:
        ValueError: for a rank below 1 or a negative ``start_powerSGD_iter``.

    Example:
        >>> from loom.parallel.comm_hooks import PowerSGDState
        >>> state = PowerSGDState(None, matrix_approximation_rank=2, start_powerSGD_iter=10)
        >>> state.iter
        0
    """

    def __init__(
        self,
        process_group: Any,
        matrix_approximation_rank: int = 1,
        start_powerSGD_iter: int = 1_000,
        min_compression_rate: float = 2,
        use_error_feedback: bool = True,
        warm_start: bool = True,
        orthogonalization_epsilon: float = 0,
        random_seed: int = 0,
    ) -> None:
        if matrix_approximation_rank < 1:
            raise ValueError(
                f"PowerSGDState: matrix_approximation_rank must be >= 1, got {matrix_approximation_rank}"
            )
        if start_powerSGD_iter < 0:
            raise ValueError(f"PowerSGDState: start_powerSGD_iter must be >= 0, got {start_powerSGD_iter}")
        self.process_group = process_group
        self.matrix_approximation_rank = matrix_approximation_rank
        self.start_powerSGD_iter = start_powerSGD_iter
        self.min_compression_rate = min_compression_rate
        self.use_error_feedback = use_error_feedback
        self.warm_start = warm_start
        self.orthogonalization_epsilon = orthogonalization_epsilon
        self.random_seed = random_seed
        self.iter = 0
        self.error_dict: dict[int, torch.Tensor] = {}
        self.q_memory_dict: dict[int, list[torch.Tensor]] = {}

    def _step(self, bucket: GradBucket) -> None:
        if bucket.is_last():
            self.iter += 1


def _should_compress(n: int, m: int, r: int, min_rate: float) -> bool:
    return n > 1 and m > 1 and (n + m) * r * min_rate < n * m


def _orthonormalize(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Gram-Schmidt on the columns of ``p``, in place; returns ``p``."""
    for k in range(p.shape[1]):
        col = p[:, k]
        if k:
            col -= p[:, :k] @ (p[:, :k].T @ col)
        norm = col.norm()
        col /= norm + eps if eps else (norm if norm > 0 else 1.0)
    return p


def powerSGD_hook(state: PowerSGDState, bucket: GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket with rank-``r`` PowerSGD compression of its matrices, with error feedback.

    Tensors with one dimension, and matrices too small to gain from compression, are averaged exactly;
    each other gradient, viewed as a matrix ``M`` (``n x m``), is approximated by ``P @ Q.T`` where
    ``P = orth(avg(M @ Q))`` and ``Q = avg(M.T @ P)``, exchanging ``(n + m) * r`` numbers instead of
    ``n * m``. See NOTE [PowerSGD runs synchronously inside the hook].

    Args:
        state: a :class:`PowerSGDState` (shared by all buckets).
        bucket: the bucket to reduce.

    Returns:
        A completed future holding the averaged (approximated) buffer.

    Example:
        >>> from loom.parallel.comm_hooks import PowerSGDState, powerSGD_hook
        >>> # ddp_model.register_comm_hook(PowerSGDState(None, matrix_approximation_rank=1), powerSGD_hook)
    """
    if state.iter < state.start_powerSGD_iter:
        state._step(bucket)
        return allreduce_hook(state.process_group, bucket)
    group = _comm.resolve(state.process_group)
    world = _comm.world_size(group)
    index = bucket.index()
    buffer = bucket.buffer()
    if state.use_error_feedback:
        if index in state.error_dict:
            buffer.add_(state.error_dict[index])
        local = buffer.clone()
    shapes = [
        (g.shape[0], g.numel() // max(g.shape[0], 1)) if g.dim() > 1 else (g.numel(), 1)
        for g in bucket.gradients()
    ]
    r0 = state.matrix_approximation_rank
    compress = [
        g.dim() > 1 and _should_compress(n, m, min(n, m, r0), state.min_compression_rate)
        for g, (n, m) in zip(bucket.gradients(), shapes)
    ]
    grads = bucket.gradients()
    # 1. exact average of the tensors left uncompressed
    plain = [g for g, c in zip(grads, compress) if not c]
    if plain:
        flat = torch.cat([g.reshape(-1) for g in plain]).div_(world)
        _comm.all_reduce_sum(flat, group, f"powerSGD_hook (uncompressed) on bucket {index}")
        torch._foreach_copy_(
            plain, [c.view_as(g) for c, g in zip(torch.split(flat, [g.numel() for g in plain]), plain)]
        )
    targets = [g for g, c in zip(grads, compress) if c]
    # reshape copies non-contiguous views (channels_last weights): results are written back through targets
    matrices = [g.reshape(n, m) for g, (n, m), c in zip(grads, shapes, compress) if c]
    if matrices:
        ranks = [min(mat.shape[0], mat.shape[1], r0) for mat in matrices]
        qs = _initial_qs(state, index, matrices, ranks)
        # 2. P = avg(M Q), orthonormalized
        ps = [mat @ q for mat, q in zip(matrices, qs)]
        p_flat = torch.cat([p.reshape(-1) for p in ps])
        _comm.all_reduce_sum(p_flat, group, f"powerSGD_hook (P) on bucket {index}")
        ps = [
            _orthonormalize(c.view_as(p).clone(), state.orthogonalization_epsilon)
            for c, p in zip(torch.split(p_flat, [p.numel() for p in ps]), ps)
        ]
        # 3. Q = avg(M^T P); M is approximated by P Q^T
        qs = [mat.T @ p for mat, p in zip(matrices, ps)]
        q_flat = torch.cat([q.reshape(-1) for q in qs]).div_(world)
        _comm.all_reduce_sum(q_flat, group, f"powerSGD_hook (Q) on bucket {index}")
        qs = [c.view_as(q) for c, q in zip(torch.split(q_flat, [q.numel() for q in qs]), qs)]
        for target, p, q in zip(targets, ps, qs):
            target.copy_((p @ q.T).reshape(target.shape))
        if state.warm_start:
            state.q_memory_dict[index] = [q.clone() for q in qs]
    if state.use_error_feedback:
        state.error_dict[index] = local - buffer
    state._step(bucket)
    done: torch.futures.Future[torch.Tensor] = torch.futures.Future()
    done.set_result(buffer)
    return done


def _initial_qs(
    state: PowerSGDState, index: int, matrices: list[torch.Tensor], ranks: list[int]
) -> list[torch.Tensor]:
    remembered = state.q_memory_dict.get(index)
    if (
        state.warm_start
        and remembered is not None
        and [q.shape for q in remembered] == [(mat.shape[1], r) for mat, r in zip(matrices, ranks)]
    ):
        return remembered
    # every rank draws the same Q: seeded by (seed, iteration, bucket)
    gen = torch.Generator().manual_seed(state.random_seed * 1_000_003 + state.iter * 1_009 + index)
    return [
        torch.randn(mat.shape[1], r, generator=gen, dtype=mat.dtype).to(mat.device)
        for mat, r in zip(matrices, ranks)
    ]
