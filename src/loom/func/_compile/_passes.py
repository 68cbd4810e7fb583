"""Clean-ups on a traced graph before it runs: drop what the trace recorded but the replay does not need.

NOTE [graph clean-ups]
- Dead ops: the autograd engine and Loom's wrappers issue ops whose results nobody reads (a ``detach`` of a
  saved tensor, a shape-only ``view``). They are removed unless they write into a tensor or draw random
  numbers (dropping an unused draw would shift every later draw from eager Loom's stream).
- ``detach`` and ``alias``: when the graph records no autograd (no input or captured tensor requires grad,
  or grad mode is off) they return their input unchanged in every way that matters, so their uses read the
  input directly. With autograd they stop gradients and are kept.
"""

from __future__ import annotations

import torch
import torch.fx

aten = torch.ops.aten
_PASS_THROUGH = (aten.detach.default, aten.alias.default)


def _removable(node: torch.fx.Node) -> bool:
    target = node.target
    if node.op != "call_function" or node.users:
        return False
    if not isinstance(target, torch._ops.OpOverload):
        return False
    seeded = getattr(torch.Tag, "nondeterministic_seeded", None)
    return not target._schema.is_mutable and (seeded is None or seeded not in target.tags)


def simplify(gm: torch.fx.GraphModule, records_autograd: bool) -> None:
    """Apply NOTE [graph clean-ups] to ``gm`` in place."""
    graph = gm.graph
    if not records_autograd:
        for node in list(graph.nodes):
            if node.op == "call_function" and node.target in _PASS_THROUGH:
                node.replace_all_uses_with(node.args[0])
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph.nodes)):
            if _removable(node):
                graph.erase_node(node)
                changed = True
    gm.recompile()
