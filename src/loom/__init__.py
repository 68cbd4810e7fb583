"""Loom: composable DataPipes, function transforms and data-parallel training on PyTorch.

Three subsystems, each usable alone:

- ``loom.data``: DataPipes and a checkpointable loader (torchdata-compatible).
- ``loom.func``: composable function transforms (torch.func-compatible).
- ``loom.parallel``: DistributedDataParallel with static graph (torch DDP-compatible).
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "data", "func", "parallel"]


def __getattr__(name: str) -> object:
    # Subpackages load on first use, so `import loom` stays cheap and each stays independent.
    if name in ("data", "func", "parallel"):
        import importlib

        return importlib.import_module(f"loom.{name}")
    raise AttributeError(f"module 'loom' has no attribute {name!r}")
