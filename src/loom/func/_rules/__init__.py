"""Batching rules for vmap, one module per op family; every module here is imported on first use.

# How a batching rule looks

A rule batches one aten op. It receives the op's positional arguments with every tensor batched at the
current vmap level replaced by its *physical* tensor, and a parallel sequence of batch dims::

    @batch_rule(aten.sum.dim_IntList)          # or a packet, aten.sum: every overload
    def sum_dim(args, bdims, **kwargs):
        x, dim, keepdim = args[0], args[1], args[2] if len(args) > 2 else False
        ...
        return out, out_bdim

- ``args``: the op's positional arguments as aten received them (defaults not filled in). A batched tensor
  appears as its physical tensor, whose batch dimension is ``bdims[i]`` (always 0 for inputs today; rules must
  not rely on that and should call ``to_front``/``materialize``). Unbatched tensors (including tensors
  batched only at *other* vmap levels) appear as they are, with bdim ``None``. A ``Tensor[]`` argument appears
  as a list, and its bdim is a tuple with one entry per element.
- ``kwargs``: the op's keyword-only arguments (metadata such as ``dtype``, ``memory_format``).
- Return ``(out, out_bdim)``: ``out`` a tensor (``out_bdim`` an int, or ``None`` if the result is the same
  for every example) or a tuple of tensors (``out_bdim`` a tuple, or one int for all).
- A rule only sees ops where at least one input is batched at its level; ops without batched inputs never
  reach vmap. Nested vmaps need nothing special: ops on the physical tensors dispatch to lower levels.
- In-place ops (the first argument is written) are checked before the rule runs: writing a batched value into
  an unbatched tensor is an error. The rule mutates the physical first argument; its return value is ignored
  and the original BatchedTensor is returned.
- Helpers live in ``_table``: ``batch_size_of``, ``to_front``, ``materialize`` (expand an unbatched tensor),
  ``logical_rank``, ``wrap_dim``, ``pad_to_rank`` and ``current_level()`` (the VmapLevel, for randomness and
  error messages that repeat the user's call: ``current_level().call``).

# How to register one

Inside Loom: add a module ``_rules/<family>.py`` (it is imported automatically) and decorate each rule with
``@batch_rule(op, ...)``; register a generic rule for many ops at once with
``register_each(make_rule, *ops)``, where ``make_rule(overload)`` returns the rule. Users call
``loom.func.register_batch_rule(op, rule)`` with the same convention.

Ops with no rule: pointwise ops (``torch.Tag.pointwise``) get the generic broadcasting rule; otherwise
torch's decomposition is tried, then a per-example loop that warns once per op
(``loom.func.set_vmap_fallback('error')`` makes it an error; the tests do).

# How to test one

Add ``tests/func/rules/test_<family>.py``: for each op, compare ``vmap(f, in_dims)`` with a per-example loop
(``torch.stack([f(x[i]) for i in ...])``) and with torch.func's ``vmap`` (the oracle), over batched/unbatched argument
combinations, non-zero in_dims, and under ``vmap(vjp)`` for the backward ops; the tests run with the
fallback set to ``"error"``, so a missing rule fails. ``tests/func/_checks.py`` has ``check_vmap``.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import _table as _table

_loaded = [False]


def load_all() -> None:
    """Import every family module (registering its rules); runs once."""
    if _loaded[0]:
        return
    _loaded[0] = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
