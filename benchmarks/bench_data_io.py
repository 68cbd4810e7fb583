"""loom.data I/O throughput: LineReader over a 50 MB text file, and WebDataset grouping of 10,000 tar samples.

Contenders, in one process, interleaved: Loom; torchdata 0.9's pipes when installed; plain Python
(``for line in open(...)`` and a ``tarfile`` loop, the floors); and the ``webdataset`` package when it
can be imported (it is not a Loom dependency: ``pip install webdataset`` or put it on PYTHONPATH).
``loom_chain_only`` is a diagnostic: Loom's iterator chain consumed directly, not through the
``PipeIterator`` (whose ``__next__`` is the chain's own, looked up on its type per element). Every
contender produces the same outputs: ``(path, line)`` pairs with newlines stripped, and sample dicts
of bytes keyed by extension. Files are written once into a temporary directory.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

from harness import Suite, cli_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loom.data.iter import IterableWrapper


def make_text(path: str, size: int) -> int:
    rnd = random.Random(0)
    lines = 0
    with open(path, "w") as f:
        written = 0
        while written < size:
            line = "x" * rnd.randint(5, 60) + "\n"
            f.write(line)
            written += len(line)
            lines += 1
    return lines


def make_shards(directory: str, samples: int, shards: int) -> list[str]:
    paths = []
    per = samples // shards
    for s in range(shards):
        path = os.path.join(directory, f"shard-{s:03d}.tar")
        with tarfile.open(path, "w") as tar:
            for i in range(per):
                key = f"sample{s * per + i:06d}"
                for ext, data in ((".txt", f"caption {key}".encode()), (".cls", str(i % 10).encode())):
                    info = tarfile.TarInfo(key + ext)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths


def count(items: Any) -> int:
    n = 0
    for _ in items:
        n += 1
    return n


def raw_chain(pipe: Any) -> Any:
    """The C-level iterator chain under ``iter(pipe)`` (a private detail; ``None`` if it moved)."""
    root = getattr(iter(pipe), "_root", None)
    return getattr(root, "it", None)


def plain_lines(path: str) -> int:
    n = 0
    with open(path) as f:
        for line in f:
            _ = (path, line.strip("\r\n"))
            n += 1
    return n


def _read(pair: tuple[str, Any]) -> tuple[str, bytes]:
    return pair[0], pair[1].read()


def plain_tar_samples(paths: list[str]) -> int:
    n = 0
    for path in paths:
        with tarfile.open(path) as tar:
            current, sample = None, {}
            for member in tar:
                name = os.path.join(path, member.name)
                _base, _, ext = name.rpartition("/")[2].partition(".")
                key = name[: len(name) - len(ext) - 1]
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if key != current:
                    if current is not None:
                        n += 1
                    current, sample = key, {"__key__": key}
                sample["." + ext] = data
            n += current is not None
    return n


def main() -> None:
    args = cli_args(__doc__)
    size = 2_000_000 if args.quick else 50_000_000
    samples = 1_000 if args.quick else 10_000
    repeats = 2 if args.quick else 7
    try:
        import torchdata.datapipes.iter as td
    except ImportError:
        td = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import webdataset as wds
    except ImportError:
        wds = None
    suite = Suite("data_io", warmup=1, repeats=repeats)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "lines.txt")
        n_lines = make_text(text, size)
        expected = list(IterableWrapper([text]).open_files().readlines())
        assert expected == [(text, line.strip("\r\n")) for line in open(text)]  # noqa: SIM115
        lines = {
            "loom": lambda: count(IterableWrapper([text]).open_files().readlines()),
            "python_loop": lambda: plain_lines(text),
        }
        if raw_chain(IterableWrapper([text]).open_files().readlines()) is not None:
            # diagnostic: the same iteration without the PipeIterator around the chain
            lines["loom_chain_only"] = lambda: count(
                raw_chain(IterableWrapper([text]).open_files().readlines())
            )
        if td is not None:
            assert list(td.LineReader(td.FileOpener(td.IterableWrapper([text])))) == expected
            lines["torchdata"] = lambda: count(td.LineReader(td.FileOpener(td.IterableWrapper([text]))))
        suite.compare(f"readlines {size // 1_000_000} MB", items_per_call=n_lines, **lines)

        shards = make_shards(tmp, samples, 10)

        def loom_wds() -> Any:
            return IterableWrapper(shards).open_files("b").load_from_tar().map(_read).webdataset()

        reference = list(loom_wds())
        assert len(reference) == samples
        tars = {"loom": lambda: count(loom_wds()), "python_loop": lambda: plain_tar_samples(shards)}
        if td is not None:

            def td_wds() -> Any:
                return td.WebDataset(
                    td.TarArchiveLoader(td.FileOpener(td.IterableWrapper(shards), mode="b")).map(_read)
                )

            assert list(td_wds()) == reference
            tars["torchdata"] = lambda: count(td_wds())
        if wds is not None:

            def wds_samples() -> int:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return count(wds.WebDataset(shards, shardshuffle=False))

            assert wds_samples() == samples
            tars["webdataset_pkg"] = wds_samples
        suite.compare(f"webdataset {samples} samples", items_per_call=samples, **tars)
    suite.finish(args.json)


if __name__ == "__main__":
    main()
