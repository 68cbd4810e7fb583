"""Composable function transforms: vmap, grad, vjp, jvp, jacrev, jacfwd, hessian.

API-compatible with ``torch.func``: porting is an import change (``from loom.func import vmap, grad``).
"""

from __future__ import annotations

from . import _rules
from ._api import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, linearize, vjp, vmap
from ._batched import set_vmap_fallback
from ._compile import compile
from ._module import functional_call, replace_all_batch_norm_modules_, stack_module_state
from ._rules._table import register_batch_rule

_rules.load_all()

__all__ = [
    "compile",
    "functional_call",
    "grad",
    "grad_and_value",
    "hessian",
    "jacfwd",
    "jacrev",
    "jvp",
    "linearize",
    "register_batch_rule",
    "replace_all_batch_norm_modules_",
    "set_vmap_fallback",
    "stack_module_state",
    "vjp",
    "vmap",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
