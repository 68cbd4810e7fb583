"""Resume checks for multi-output pipes (fork, demux, unzip) iterated by separate iterators in lock step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._checks import assert_plain, roundtrip


def _lockstep(iterators: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    while True:
        row = []
        for it in iterators:
            try:
                row.append(next(it))
            except StopIteration:
                return out
        out.append(tuple(row))


def assert_children_resume_in_lockstep(
    build_children: Callable[[], list[Any]], *, every: int = 1
) -> list[Any]:
    """As ``zip(*children)`` with one iterator per child: snapshot every child at each step, restore
    the snapshots into freshly built children, and compare what follows. Returns the full output."""
    reference = _lockstep([iter(c) for c in build_children()])
    iterators = [iter(c) for c in build_children()]
    states: list[list[dict[str, Any]]] = []
    produced: list[tuple[Any, ...]] = []
    while True:
        states.append([it.state_dict() for it in iterators])
        step = []
        done = False
        for it in iterators:
            try:
                step.append(next(it))
            except StopIteration:
                done = True
                break
        if done:
            break
        produced.append(tuple(step))
    assert produced == reference, "taking state_dict() changed what the children produce"
    for position in range(0, len(states), every):
        for candidate in (states[position], [roundtrip(s) for s in states[position]]):
            for s in candidate:
                assert_plain(s)
            fresh = [iter(c) for c in build_children()]
            for it, s in zip(fresh, candidate):
                it.load_state_dict(s)
            rest = _lockstep(fresh)
            assert rest == reference[position:], (
                f"restored at step {position}: got {rest[:3]}... expected {reference[position : position + 3]}..."
            )
    return reference


def assert_children_resume_interleaved(build_children: Callable[[], list[Any]], schedule: list[int]) -> None:
    """Read the children in the order ``schedule`` gives (child indices; an ended child is skipped),
    snapshot every child at each step, restore into fresh children, and compare what follows."""

    def run(iterators: list[Any], steps: list[int]) -> list[tuple[int, Any]]:
        out = []
        for i in steps:
            try:
                out.append((i, next(iterators[i])))
            except StopIteration:
                out.append((i, "<end>"))
        return out

    reference = run([iter(c) for c in build_children()], schedule)
    iterators = [iter(c) for c in build_children()]
    for position in range(len(schedule) + 1):
        states = [it.state_dict() for it in iterators]
        fresh = [iter(c) for c in build_children()]
        for it, s in zip(fresh, [roundtrip(s) for s in states]):
            it.load_state_dict(s)
        assert run(fresh, schedule[position:]) == reference[position:], f"restored at step {position}"
        if position < len(schedule):
            run(iterators, schedule[position : position + 1])
