"""Per-stage counts and sampled timing: what ``_iterator._count`` wraps around a stage when profiling is on.

# NOTE [per-stage counts]
# A counted stage's raw iterator runs inside ``compress(it, selectors)`` with ``selectors =
# repeat(True, sys.maxsize)``. ``compress`` takes the element first and a selector after, so the
# repeat is pulled once per element produced and never when the stage ends or raises: the elements
# produced so far are ``sys.maxsize - selectors.__length_hint__()``, exact at any moment. Both are
# builtins calling each other's C slots, so counting adds no Python call per element (``enumerate``
# plus ``map(itemgetter(1), ...)`` cost about 5x more: a new int and a function call per element).
#
# NOTE [per-stage timing]
# Timing every ``next`` of every stage (two clock reads and a generator step each) cost 6x on a chain
# of trivial stages (BENCHMARKS.md), so a timed stage is sampled. Its counted iterator runs inside
# ``chain.from_iterable(_sampler(...))``: the sampler hands ``chain`` an ``islice`` of k - 1 elements,
# which pass through C code untouched, then times one ``next`` itself (``perf_counter`` before and
# after, less the clock's own cost, ``_clock_bias``) and hands over that element, and so on:
#
#   - the first ``_TIME_FIRST`` elements are timed one by one: startup work, such as opening a file,
#     is measured, not extrapolated; the very first ``next`` is taken as measured, unscaled;
#   - then, every ``_PLAN_LENGTH`` timed elements, the sampler looks at the stage's mean ``next`` so
#     far: at ``_TIME_ALL_ABOVE_S`` or more every element stays timed (a timed ``next`` costs about
#     1 µs, so that is under 1%), a cheaper stage gets about one timed element in ``m = min(
#     _SAMPLE_EVERY, _TIME_ALL_ABOVE_S / mean)``;
#   - k is drawn uniformly from about [m/2, 3m/2] each time, so that stages with the same period do not
#     keep timing the same element (a stage would then always include its source's timing cost), and
#     data with a period does not alias.
#
# A timed ``next`` after the first stands for k elements (itself and the untimed ones before it):
# ``time_s`` is the sum of seconds x k, scaled to all the elements produced so far (counted as in NOTE
# [per-stage counts]), plus what is taken as measured: the first ``next``, the ``next`` calls that
# ended the stage or raised, and rare outliers. An outlier is a sampled ``next`` slower than
# ``_OUTLIER_S`` and ``_OUTLIER_TIMES`` the mean: scaled by k, one preemption of a few milliseconds on a
# loaded machine would add a second to a cheap stage, so while outliers are rare (at most ``_RARE_N``,
# or under ``_RARE_SHARE`` of the timed elements) each counts once, as measured. Outliers more frequent
# than that are the stage's own cost (an expensive element every 16th) and are scaled like the rest;
# slow elements rarer than that in a cheap stage are undercounted.
# ``time_s`` is thus an estimate unless ``sampled`` (timed ``next`` calls that produced an element)
# equals ``produced``. A stage's ``next`` runs its sources' inside it, so ``time_s`` is cumulative;
# ``profile()`` reports ``self_s = time_s - sum(time_s of its direct sources)``: the self times still
# add up to the output stage's ``time_s``, but the self time of a stage whose own work is small next to
# its sources' is mostly sampling noise, and can be negative. The timing's own cost lands in the self
# time of the stage above. A stage that runs its source in a background thread (prefetch, a
# thread-pool map) overlaps with it, so its self time can be negative too. Pipes shared by several
# readers in one iteration (the container behind fork/demux) are neither counted nor timed: their time
# is in their readers', and each reader's self time has the whole of the shared upstream's time taken
# off, so with fork/demux the sum is not exact.
#
# Nothing here holds an element across a ``yield`` (the ``(x,)`` handed to ``chain`` is consumed in
# the same ``next``), so ``state_dict()`` sees the chain as without profiling. An exception from the
# stage propagates as without profiling, and a consumer that goes on calling ``next`` gets the next
# elements. After the stage ends the sampler calls its ``next`` once more (an islice hides why it
# stopped), which an iterator must answer with StopIteration again.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterable, Iterator
from itertools import chain, compress, islice, repeat
from typing import Any

_FOREVER = sys.maxsize
_SAMPLE_EVERY = 128  # at most, on average, one timed next in this many elements of a cheap stage
_TIME_ALL_ABOVE_S = 100e-6  # a stage whose next takes this long on average is timed at every element
_TIME_FIRST = 8  # the first elements of every stage are all timed
_PLAN_LENGTH = 32  # timed elements between two looks at the stage's mean
_OUTLIER_S = 200e-6  # a sampled next this slow, and _OUTLIER_TIMES the mean, is an outlier
_OUTLIER_TIMES = 20.0
_RARE_N = 2  # outliers count once, unscaled, while there are at most this many
_RARE_SHARE = 0.002  # or they are fewer than this share of the timed next calls
_clock = time.perf_counter
_BIAS: float | None = None  # see _clock_bias
_jitter = random.Random(0x10015).random  # a private generator: the global random state is the user's


def counted(it: Iterator[Any]) -> tuple[Iterator[Any], repeat[bool]]:
    """``it`` with a count of its elements; see NOTE [per-stage counts]."""
    selectors = repeat(True, _FOREVER)
    return compress(it, selectors), selectors


def produced(selectors: repeat[bool]) -> int:
    return _FOREVER - selectors.__length_hint__()


class StageTimer:
    """The sampled timing of one stage; see NOTE [per-stage timing]."""

    __slots__ = (
        "counter",
        "covered",
        "exact_n",
        "exact_s",
        "rare_k",
        "rare_ks",
        "rare_n",
        "rare_s",
        "sampled",
        "sampled_s",
    )

    def __init__(self, counter: repeat[bool]) -> None:
        self.counter = counter
        self.exact_s = 0.0  # seconds taken as measured: the first next, the ending/raising nexts
        self.exact_n = 0  # the elements those produced
        self.sampled_s = 0.0  # sum of seconds x k over the other timed next calls, outliers aside
        self.covered = 0  # sum of their k: the elements they stand for
        self.rare_s = 0.0  # the outliers: seconds, seconds x k, k, how many
        self.rare_ks = 0.0
        self.rare_k = 0
        self.rare_n = 0
        self.sampled = 0  # timed next calls that produced an element

    def time_s(self) -> float:
        """Estimated seconds inside the stage's ``next`` so far, its sources' included."""
        weighted = self.sampled_s
        covered = self.covered
        spent = self.exact_s
        counted = self.exact_n
        if self.rare_n > _RARE_N and self.rare_n >= _RARE_SHARE * self.sampled:
            weighted += self.rare_ks  # frequent enough to be the stage's own: scaled like the rest
            covered += self.rare_k
        else:
            spent += self.rare_s  # noise, say a preemption: counted once
            counted += self.rare_n
        spent += weighted
        pending = produced(self.counter) - counted - covered
        if pending > 0 and covered:
            spent += pending * weighted / covered
        return max(spent, 0.0)


def timed(it: Iterator[Any], timer: StageTimer) -> Iterator[Any]:
    """``it`` (counted by ``timer.counter``), with ``timer`` sampling the time of its ``next``."""
    return chain.from_iterable(_sampler(it, timer))


def _sampler(it: Iterator[Any], timer: StageTimer) -> Iterator[Iterable[Any]]:
    clock = _clock
    bias = _clock_bias()
    plan: tuple[int, ...] = (1,)
    outlier = float(_FOREVER)
    while True:
        for k in plan:  # a chunk of k - 1 untimed elements, then a timed one standing for all k
            if k > 1:
                yield islice(it, k - 1)
            began = clock()
            try:
                x = next(it)
            except StopIteration:
                timer.exact_s += clock() - began - bias
                return
            except Exception as err:
                timer.exact_s += clock() - began - bias
                yield _raising(err)  # chain raises it; a consumer that goes on gets the next elements
                del err
                continue
            spent = clock() - began - bias
            if not timer.sampled:
                timer.exact_s += spent
                timer.exact_n += 1
            elif spent > outlier:
                timer.rare_s += spent
                timer.rare_ks += spent * k
                timer.rare_k += k
                timer.rare_n += 1
            else:
                timer.sampled_s += spent * k
                timer.covered += k
            timer.sampled += 1
            yield (x,)
        plan, outlier = _plan(timer)


def _plan(timer: StageTimer) -> tuple[tuple[int, ...], float]:
    """The intervals of the next few timed elements, and the time above which one is an outlier."""
    if timer.sampled < _TIME_FIRST or not timer.covered:
        return (1,), float(_FOREVER)
    mean = timer.sampled_s / timer.covered
    every = _SAMPLE_EVERY if mean <= 0.0 else min(_SAMPLE_EVERY, int(_TIME_ALL_ABOVE_S / mean))
    if every <= 1:
        return (1,) * _PLAN_LENGTH, float(_FOREVER)
    low = (every + 1) // 2
    plan = tuple(low + int(_jitter() * every) for _ in range(_PLAN_LENGTH))
    return plan, max(_OUTLIER_S, _OUTLIER_TIMES * mean)


def _clock_bias() -> float:
    """What a timed ``next`` of a trivial builtin iterator measures: taken off every timed ``next``."""
    global _BIAS
    if _BIAS is None:
        clock = _clock
        it = repeat(None)
        spent = []
        for _ in range(201):
            began = clock()
            next(it)
            spent.append(clock() - began)
        _BIAS = sorted(spent)[20]  # a low quantile: better to leave some bias than to take off too much
    return _BIAS


def _raising(err: Exception) -> Iterator[Any]:
    raise err
    yield  # unreachable: makes this a generator, which raises once and is then exhausted
