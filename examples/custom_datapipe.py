"""A custom DataPipe registered with ``@functional_datapipe``, in a ``FileOpener(...).map(decoder)`` pipeline.

The torchdata tutorial's first steps, ported by changing imports: list files, open them, decode each one,
then a pipe of our own (``.windows(size)``, registered with ``@functional_datapipe``), shuffled and batched.
The same pipeline also runs inside the classic ``torch.utils.data.DataLoader`` with worker processes.

Check: the pipeline yields exactly what a plain Python loop over the files gives (``open``,
``torch.frombuffer``, slicing), and the DataLoader with 2 workers yields the same windows.

Run: ``python examples/custom_datapipe.py [--files N] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from loom.data import IterDataPipe, functional_datapipe
from loom.data.iter import FileLister, FileOpener


@functional_datapipe("windows")
class Windower(IterDataPipe):
    """Cuts each 1-D tensor into consecutive windows of ``size`` values, dropping the remainder."""

    def __init__(self, source_datapipe: IterDataPipe, size: int) -> None:
        if size < 1:
            raise ValueError(f"windows: size must be >= 1, got {size}")
        self.source_datapipe = source_datapipe
        self.size = size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for signal in self.source_datapipe:
            for start in range(0, len(signal) - self.size + 1, self.size):
                yield signal[start : start + self.size]


def decode(item: tuple[str, object]) -> torch.Tensor:
    """(path, binary stream) -> the float32 values stored in the file."""
    _path, stream = item
    data = stream.read()  # type: ignore[attr-defined]
    stream.close()  # type: ignore[attr-defined]
    return torch.frombuffer(bytearray(data), dtype=torch.float32)


def write_files(root: str, n: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        length = int(torch.randint(20, 60, (1,), generator=gen))
        values = torch.randn(length, generator=gen)
        with open(os.path.join(root, f"signal_{i:03d}.bin"), "wb") as f:
            f.write(values.numpy().tobytes())


def build_pipeline(root: str, size: int, workers: bool = False) -> IterDataPipe:
    files = FileLister(root, masks="*.bin")
    if workers:
        # Shuffle the file list (the same order in every worker), then give each worker its share.
        files = files.shuffle().sharding_filter()
    return FileOpener(files, mode="b").map(decode).windows(size)


def plain_python(root: str, size: int) -> list[torch.Tensor]:
    out = []
    for name in sorted(os.listdir(root)):
        if not name.endswith(".bin"):
            continue
        with open(os.path.join(root, name), "rb") as f:
            signal = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        out.extend(signal[s : s + size] for s in range(0, len(signal) - size + 1, size))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    n_files = 8 if args.quick else args.files
    ok = True
    with tempfile.TemporaryDirectory() as root:
        write_files(root, n_files)
        pipe = build_pipeline(root, args.size)
        print(pipe)
        ours = list(pipe)
        expected = plain_python(root, args.size)
        same = len(ours) == len(expected) and all(torch.equal(a, b) for a, b in zip(ours, expected))
        print(f"pipeline: {len(ours)} windows; plain Python loop: {len(expected)}; identical: {same}")
        ok &= same

        # The same pipeline, shuffled and batched, in torch's DataLoader with 2 worker processes.
        batched = build_pipeline(root, args.size, workers=True).shuffle().batch(4).map(torch.stack)
        loader = DataLoader(batched, batch_size=None, num_workers=2)
        from_loader = sorted(tuple(w.tolist()) for batch in loader for w in batch)
        want = sorted(tuple(w.tolist()) for w in expected)
        same_set = from_loader == want
        print(f"DataLoader(num_workers=2): {len(from_loader)} windows, same multiset as the loop: {same_set}")
        ok &= same_set
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
