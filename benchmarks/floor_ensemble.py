"""The ensemble benchmark's floor on a GPU: its two batched matmuls alone, in float32 and with TF32.

The ensemble of 64 MLPs 784-512-10 on a 256-batch (bench_func, bench_compile) is 13.3 GFLOP of matmuls. This
script times exactly those, as ``baddbmm`` + ``relu_`` + ``baddbmm`` on tensors already in place (no copies,
no transforms), so that a target for the transformed versions can be checked against what the GPU can do.

Usage: python benchmarks/floor_ensemble.py   (needs CUDA)
"""

from __future__ import annotations

import statistics
import time

import torch


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("floor_ensemble: needs CUDA")
    dev = "cuda"
    x = torch.randn(256, 784, device=dev)
    w1, b1 = torch.randn(64, 512, 784, device=dev), torch.randn(64, 1, 512, device=dev)
    w2, b2 = torch.randn(64, 10, 512, device=dev), torch.randn(64, 1, 10, device=dev)

    def ensemble() -> torch.Tensor:
        h = torch.baddbmm(b1, x.expand(64, 256, 784), w1.transpose(1, 2)).relu_()
        return torch.baddbmm(b2, h, w2.transpose(1, 2))

    flops = 64 * 2 * 256 * (784 * 512 + 512 * 10)
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for _ in range(10):
                ensemble()
            times = []
            for _ in range(50):
                torch.cuda.synchronize()
                start = time.perf_counter()
                ensemble()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1e3
            print(f"ensemble matmuls only, tf32={tf32}: {ms:.3f} ms = {flops / ms / 1e9:.1f} TFLOP/s")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


if __name__ == "__main__":
    main()
