"""Composable function transforms: vmap, grad, vjp, jvp, jacrev, jacfwd, hessian, compile.

API-compatible with ``torch.func``. Being built: see the project's issues.
"""

from __future__ import annotations

__all__: list[str] = []
