"""Composable function transforms: vmap, grad, vjp, jvp, jacrev, jacfwd, hessian.

API-compatible with ``torch.func``: porting is an import change (``from loom.func import vmap, grad``).
"""

from __future__ import annotations

from . import _rules
from ._api import grad, grad_and_value, jvp, vjp, vmap
from ._batched import set_vmap_fallback
from ._rules._table import register_batch_rule

_rules.load_all()

__all__ = ["grad", "grad_and_value", "jvp", "register_batch_rule", "set_vmap_fallback", "vjp", "vmap"]

for _name in __all__:
    globals()[_name].__module__ = __name__
