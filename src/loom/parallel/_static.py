"""Static-graph bookkeeping: the first synchronized backward's record, then checks against it.

See NOTE [static graph] in _reducer.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import torch

# the id of the graph task (one backward call; reentrant checkpointing runs its own) that runs the caller
_graph_task_id: Callable[[], int] | None = getattr(torch._C, "_current_graph_task_id", None)


class StaticGraph:
    """Hook firing counts, unused parameters and ready order recorded once, then enforced."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.recording = True
        self.counts: list[int] = []
        self.local_unused: list[int] = []
        self.global_used: list[bool] | None = None
        self._log: list[int] = []
        self.remaining: list[int] = []  # firings left per parameter in this iteration
        self.first_firing_outermost = False  # the record's first hook ran in the graph task that began it
        self._task: int | None = None

    def start_iteration(self) -> None:
        if self.recording:
            self._log = []
        else:
            self.remaining = list(self.counts)

    def began(self) -> None:
        """The recorded backward started (in the graph task that the final callback is queued on)."""
        self._task = None if _graph_task_id is None else _graph_task_id()

    def fired(self, i: int) -> None:
        if not self._log and self._task is not None:
            assert _graph_task_id is not None
            self.first_firing_outermost = _graph_task_id() == self._task  # not inside a reentrant backward
        self._log.append(i)

    def fired_set(self) -> set[int]:
        return set(self._log)

    def fired_too_often(self, i: int, names: list[str]) -> NoReturn:
        """Raise for a parameter whose hook fired more often than recorded (the reducer counts firings)."""
        if self.counts[i] == 0:
            detail = "it was unused in the first iteration"
        else:
            detail = f"more than the {self.counts[i]} time(s) recorded in the first iteration"
        raise RuntimeError(
            f"DistributedDataParallel(static_graph=True): the graph changed after the first iteration: "
            f"parameter {names[i]!r} received a gradient, {detail}. static_graph requires the same graph "
            "every iteration; use find_unused_parameters=True instead."
        )

    def finish_recording(
        self, global_used: list[bool] | None, agree: Callable[[list[int]], list[int]]
    ) -> list[int]:
        """Close the record and return the bucket order all ranks share (rank 0's ready order)."""
        counts = [0] * self.n
        last: dict[int, int] = {}
        for pos, i in enumerate(self._log):
            counts[i] += 1
            last[i] = pos
        self.counts = counts
        self.local_unused = [i for i in range(self.n) if counts[i] == 0]
        self.global_used = global_used
        # unused parameters are ready as soon as backward starts, so they go first
        order = sorted(self.local_unused, reverse=True) + sorted(last, key=last.__getitem__)
        self.recording = False
        self._log = []
        return agree(order)

    def describe_missing(self, missing: list[int], names: list[str]) -> str:
        i = missing[0]
        got = self.counts[i] - self.remaining[i]
        more = f" (and {len(missing) - 1} more parameter(s))" if len(missing) > 1 else ""
        return (
            f"DistributedDataParallel(static_graph=True): the graph changed after the first iteration: "
            f"parameter {names[i]!r} received {got} gradient(s) in this backward but {self.counts[i]} in the "
            f"first iteration{more}. static_graph requires the same graph every iteration; use "
            "find_unused_parameters=True instead."
        )
