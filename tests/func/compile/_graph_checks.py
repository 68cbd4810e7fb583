"""Checks on traced graphs: only plain aten ops, no Loom wrapper anywhere."""

from __future__ import annotations

import operator
from typing import Any

import torch

from loom.func._batched import BatchedTensor


def assert_flat_aten_graph(compiled: Any) -> None:
    """Every op of the last traced graph is an aten or prims op (or a SymInt operator), and no value is a wrapper."""
    for node in compiled.graph.nodes:
        if node.op == "call_function":
            target = node.target
            is_aten = isinstance(target, torch._ops.OpOverload) and target.namespace in ("aten", "prims")
            assert is_aten or target in vars(operator).values(), f"not an aten op: {target}"
        else:
            assert node.op in ("placeholder", "get_attr", "output"), f"unexpected node kind {node.op}"
        value = node.meta.get("val")
        assert not isinstance(value, BatchedTensor), f"a BatchedTensor in the graph: {node}"
        if isinstance(value, torch.Tensor):
            assert type(value).__module__.startswith("torch"), f"a wrapper in the graph: {type(value)}"
    for name, value in compiled.graph_module.named_buffers():
        assert type(value).__module__.startswith("torch"), f"constant {name} is a {type(value)}"
    for value in vars(compiled.graph_module).values():
        assert not isinstance(value, BatchedTensor)
