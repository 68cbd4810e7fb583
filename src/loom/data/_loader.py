"""DataLoader2: iterates a pipeline through a reading service, with epochs, seeds and exact resume.

# NOTE [loader seeds and epochs]
# A loader has one seed: the one given to ``seed()``, or else one drawn from torch's default generator
# when the first epoch starts (so ``torch.manual_seed`` reproduces runs). Epoch e (counted from the
# last ``seed()`` call) runs with the seed mix(loader seed, e), so every epoch has a new order and the
# same loader seed gives the same sequence of orders (torchdata 0.9 repeats one order every epoch).
# The epoch seed is every iteration's base seed (see NOTE [seeds] in _random.py): pipes before the
# sharding point shuffle alike on every worker and rank, after it each shard differently. Under
# torch.distributed the loader seed is rank 0's. The loader seed and epoch counter are part of the
# state, so after a restore the rest of the epoch and all later epochs match an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._datapipe import IterDataPipe, MapDataPipe
from loom.data._reading._base import InProcessReadingService, ReadingServiceInterface

__all__ = ["DataLoader2"]

_LOADER_STATE_VERSION = 1


class DataLoader2:
    """Iterates a DataPipe through a reading service: in process, in worker processes, across ranks.

    Each ``iter(loader)`` is one epoch. ``state_dict()`` may be taken at any point, mid-epoch
    included; ``load_state_dict()`` (or ``from_state``) continues exactly there, and later epochs
    are those of the uninterrupted run. See NOTE [loader seeds and epochs].

    Args:
        datapipe: an IterDataPipe (a MapDataPipe is iterated in index order).
        datapipe_adapter_fn: a callable ``datapipe -> datapipe``, or a list of them, applied first.
        reading_service: where the pipeline runs; ``InProcessReadingService()`` if None.
        progress: show a tqdm progress bar per epoch (needs ``tqdm``; the total when the pipe is sized).

    Raises:
        TypeError: ``datapipe`` is not a DataPipe, or ``reading_service`` not a ReadingServiceInterface.

    Example:
        >>> from loom.data import DataLoader2
        >>> from loom.data.iter import IterableWrapper
        >>> loader = DataLoader2(IterableWrapper(range(10)).shuffle())
        >>> loader.seed(0)
        >>> first = list(loader)
        >>> sorted(first) == list(range(10)) and list(loader) != first  # a new order every epoch
        True
        >>> loader.shutdown()
    """

    def __init__(
        self,
        datapipe: Any,
        datapipe_adapter_fn: Callable[[Any], Any] | list[Callable[[Any], Any]] | None = None,
        reading_service: ReadingServiceInterface | None = None,
        *,
        progress: bool = False,
    ) -> None:
        if not isinstance(datapipe, (IterDataPipe, MapDataPipe)):
            raise TypeError(
                f"DataLoader2: datapipe must be an IterDataPipe or MapDataPipe, got {type(datapipe).__name__}"
            )
        if reading_service is not None and not isinstance(reading_service, ReadingServiceInterface):
            raise TypeError(
                "DataLoader2: reading_service must be a ReadingServiceInterface, got "
                f"{type(reading_service).__name__}"
            )
        self.datapipe = datapipe
        if datapipe_adapter_fn is None:
            self._adapters: list[Callable[[Any], Any]] = []
        elif callable(datapipe_adapter_fn):
            self._adapters = [datapipe_adapter_fn]
        else:
            self._adapters = list(datapipe_adapter_fn)
        self.reading_service = reading_service if reading_service is not None else InProcessReadingService()
        self.progress = progress
        self._pipe: Any = None
        self._initialized = False
        self._closed = False
        self._user_seed: int | None = None
        self._loader_seed: int | None = None
        self._epoch = 0  # epochs started since the loader seed was decided
        self._epoch_seed = 0
        self._stream: Any = None
        self._iterator: _LoaderIterator | None = None
        self._resume: dict[str, Any] | None = None
        self._serialized: bytes | None = None
        self._stats_on = False
        self._stats: dict[str, Any] = {"epochs": 0, "elements": 0, "next_s": 0.0}

    # --- lifecycle ---
    def _initialize(self) -> None:
        if self._closed:
            raise RuntimeError("DataLoader2: used after shutdown(); create a new DataLoader2")
        if self._initialized:
            return
        pipe = self.datapipe
        if isinstance(pipe, MapDataPipe):
            from loom.data.iter._sources import MapToIterConverter

            pipe = MapToIterConverter(pipe)
        for fn in self._adapters:
            pipe = fn(pipe)
        self._pipe = self.reading_service.initialize(pipe)
        # A service that overrides initialize() without calling the base one is still iterable.
        vars(self.reading_service).setdefault("_datapipe", self._pipe)
        self._initialized = True

    def seed(self, seed: int) -> None:
        """Seed the loader: the next epoch, and each after it, gets its order from ``seed``.

        Raises:
            TypeError: ``seed`` is not an int.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"DataLoader2.seed: seed must be an int, got {seed!r}")
        self._user_seed = seed
        self._loader_seed = None
        self._epoch = 0

    def _next_epoch_seed(self) -> int:
        from loom.data._random import mix

        if self._loader_seed is None:
            if self._user_seed is not None:
                base = self._user_seed
            else:
                import torch

                base = int(torch.empty((), dtype=torch.int64).random_().item())
            self._loader_seed = int(self.reading_service.share_seed(base))
        return mix(self._loader_seed, self._epoch)

    def __iter__(self) -> _LoaderIterator:
        self._initialize()
        self._end_stream()
        if self._resume is not None:
            resume, self._resume = self._resume, None
            self._epoch_seed = int(resume["epoch_seed"])
            self._stream = self.reading_service.initialize_iteration(self._epoch_seed, resume["stream"])
        else:
            self._epoch_seed = self._next_epoch_seed()
            self._stream = self.reading_service.initialize_iteration(self._epoch_seed, None)
        self._epoch += 1
        self._stats["epochs"] += 1
        self._iterator = _LoaderIterator(self, self._stream)
        return self._iterator

    def _end_stream(self) -> None:
        if self._stream is not None:
            self._stream = None
            if self._iterator is not None:
                self._iterator.close()
            self._iterator = None
            self.reading_service.finalize_iteration()

    def shutdown(self) -> None:
        """End the epoch in progress and stop the reading service (worker processes exit)."""
        if self._closed:
            return
        self._end_stream()
        if self._initialized:
            self.reading_service.finalize()
        self._closed = True

    def __enter__(self) -> DataLoader2:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.shutdown()

    # --- state ---
    def state_dict(self) -> dict[str, Any]:
        """The loader's position, mid-epoch included, as picklable data (the pipeline is included, pickled)."""
        in_epoch = self._stream is not None
        if self._resume is not None:  # loaded but not yet iterated: the same position
            out = dict(self._resume)
            out["serialized_datapipe"] = self._serialize()
            return out
        stream_state = self._stream.state_dict() if in_epoch else None
        return {
            "version": _LOADER_STATE_VERSION,
            "user_seed": self._user_seed,
            "loader_seed": self._loader_seed,
            "epoch": self._epoch - 1 if in_epoch else self._epoch,
            "in_epoch": in_epoch,
            "epoch_seed": self._epoch_seed,
            "stream": stream_state,
            "serialized_datapipe": self._serialize(),
        }

    def _serialize(self) -> bytes | None:
        if self._serialized is None:
            try:
                self._serialized = pickle.dumps(self.datapipe)
            except Exception:
                return None
        return self._serialized

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``state_dict()`` of a loader over the same pipeline and service).

        Raises:
            RuntimeError: ``state`` is not a DataLoader2 state.
        """
        if not isinstance(state, dict) or state.get("version") != _LOADER_STATE_VERSION:
            raise RuntimeError(
                f"DataLoader2.load_state_dict: not a DataLoader2 state (got {type(state).__name__} "
                f"with version {state.get('version') if isinstance(state, dict) else None!r})"
            )
        self._end_stream()
        self._user_seed = state["user_seed"]
        self._loader_seed = state["loader_seed"]
        self._epoch = int(state["epoch"])
        self._epoch_seed = int(state["epoch_seed"])
        self._resume = None
        if state["in_epoch"]:
            self._resume = {k: v for k, v in state.items() if k != "serialized_datapipe"}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], reading_service: ReadingServiceInterface | None = None
    ) -> DataLoader2:
        """A loader over the pipeline pickled in ``state``, positioned where ``state`` was taken.

        Raises:
            RuntimeError: the state holds no pipeline (it could not be pickled when saved).
        """
        data = state.get("serialized_datapipe") if isinstance(state, dict) else None
        if data is None:
            raise RuntimeError(
                "DataLoader2.from_state: the state holds no pipeline (it could not be pickled); build the "
                "loader yourself and call load_state_dict"
            )
        loader = cls(pickle.loads(data), reading_service=reading_service)
        loader.load_state_dict(state)
        return loader

    # --- observability ---
    def enable_stats(self, enabled: bool = True, *, timing: bool = False) -> None:
        """Count elements and time spent in ``next`` for epochs started afterwards (off by default).

        Per-stage element counts come from ``loom.data.profiling``, which this switches too (in the
        workers as well). With ``timing=True``, each stage of ``stats()["stages"]`` also holds
        ``time_s`` and ``self_s`` (seconds inside the stage with and without its sources, estimated
        from a sample of its ``next`` calls) and ``sampled`` (how many were timed); see
        ``loom.data.profiling``.

        Args:
            enabled: switch the statistics on or off.
            timing: with ``enabled``, also time each stage (sampled: a cheap stage about one element in 128).
        """
        from loom.data._iterator import profiling

        self._stats_on = bool(enabled)
        profiling(self._stats_on, timing=self._stats_on and bool(timing))

    def stats(self) -> dict[str, Any]:
        """Epochs, elements yielded and seconds spent in ``next``; the service's counters; per-stage figures.

        ``"stages"`` lists ``iter(pipe).profile()``'s rows (with workers, each tagged with its
        ``"worker"``): elements produced, and with ``enable_stats(timing=True)`` seconds per stage.

        With workers, the service adds ``wait_s`` (main waiting for workers), ``chunks``, ``elements``
        (received) and ``worker_busy_s`` (each worker's seconds inside the pipeline this epoch): a
        pipeline-bound run has busy workers, a transport-bound one an idle main.

        Example:
            >>> from loom.data import DataLoader2
            >>> from loom.data.iter import IterableWrapper
            >>> loader = DataLoader2(IterableWrapper(range(4)).map(str))
            >>> loader.enable_stats()
            >>> _ = list(loader)
            >>> loader.stats()["elements"], [s["produced"] for s in loader.stats()["stages"]]
            (4, [4, 4])
            >>> loader.enable_stats(False)
        """
        profile = getattr(self._last_stream, "profile", None) if hasattr(self, "_last_stream") else None
        stages = profile() if profile is not None else []  # with workers, this asks them for a report
        out = dict(self._stats)
        out.update(self.reading_service.stats())
        out["stages"] = stages
        return out

    def __repr__(self) -> str:
        return f"DataLoader2({self.datapipe!r}, reading_service={type(self.reading_service).__name__})"


class _LoaderIterator(Iterator[Any]):
    """One epoch of a DataLoader2; invalid once a new epoch starts."""

    def __init__(self, loader: DataLoader2, stream: Any) -> None:
        self.loader = loader
        self.stream = stream
        loader._last_stream = stream  # type: ignore[attr-defined]
        # The multiprocessing stream offers its round-robin step directly (one call less per element).
        self._next = getattr(stream, "fast_next", None) or stream.__next__
        self._bar: Any = None
        self._timed = loader._stats_on
        if loader.progress:
            self._bar = _progress_bar(loader)

    def __iter__(self) -> _LoaderIterator:
        return self

    def __next__(self) -> Any:
        if self._timed or self._bar is not None:
            return self._observed_next()
        try:
            return self._next()
        except StopIteration:
            self._ended()
            raise

    def _observed_next(self) -> Any:
        began = time.perf_counter()
        try:
            x = self._next()
        except StopIteration:
            self._ended()
            raise
        finally:
            self.loader._stats["next_s"] += time.perf_counter() - began
        self.loader._stats["elements"] += 1
        if self._bar is not None:
            self._bar.update(1)
        return x

    def _ended(self) -> None:
        if self.loader._iterator is self:
            self.loader._end_stream()

    def close(self) -> None:
        self._next = _stale
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _stale() -> Any:
    raise StopIteration


def _progress_bar(loader: DataLoader2) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as err:
        raise ImportError(
            "DataLoader2(progress=True) needs tqdm: pip install tqdm (or loom[progress])"
        ) from err
    try:
        total: int | None = len(loader._pipe)
    except TypeError:
        total = None
    return tqdm(total=total, unit="it")
