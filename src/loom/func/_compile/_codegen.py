"""The replay backend: turn a traced FX graph into one plain Python function.

NOTE [why replay generates its own code]
``GraphModule.forward`` looks up every op as ``torch.ops.aten.<name>.<overload>`` (four attribute reads) and
calls it through ``OpOverload.__call__`` (one more Python frame): about half of the cost of a small op on
CPU. The code generated here binds each op's underlying builtin (``OpOverload._op``) and each constant to a
global name once, so that a replayed op costs one builtin call. Graphs with node kinds that ``make_fx`` does
not produce fall back to ``GraphModule.forward``.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.fx

_LITERALS = (bool, int, str, type(None))


class _Namer:
    def __init__(self) -> None:
        self.globals: dict[str, Any] = {}
        self._ids: dict[int, str] = {}

    def bind(self, value: Any, hint: str) -> str:
        """A global name for ``value`` (the same name for the same object)."""
        name = self._ids.get(id(value))
        if name is None:
            base = "".join(c if c.isalnum() else "_" for c in hint) or "g"
            name = f"_G{len(self.globals)}_{base}"  # fx node names never start with _G
            self.globals[name] = value
            self._ids[id(value)] = name
        return name


def _local(node: torch.fx.Node) -> str:
    name = node.name
    return f"{name}_" if keyword.iskeyword(name) else name


def _format(arg: Any, namer: _Namer) -> str:
    if isinstance(arg, torch.fx.Node):
        return _local(arg)
    if isinstance(arg, (list, tuple)):
        inner = ", ".join(_format(a, namer) for a in arg)
        if isinstance(arg, tuple):
            return f"({inner},)" if len(arg) == 1 else f"({inner})"
        return f"[{inner}]"
    if isinstance(arg, _LITERALS):
        return repr(arg)
    if isinstance(arg, float) and math.isfinite(arg):
        return repr(arg)
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k!r}: {_format(v, namer)}" for k, v in arg.items()) + "}"
    return namer.bind(arg, type(arg).__name__)


def _callable(target: Any) -> Any:
    """The builtin under an ``OpOverload`` (see NOTE [why replay generates its own code])."""
    if isinstance(target, torch._ops.OpOverload):
        return getattr(target, "_op", target)
    return target


def _attr(module: torch.nn.Module, dotted: str) -> Any:
    value: Any = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _last_uses(graph: torch.fx.Graph) -> dict[torch.fx.Node, list[torch.fx.Node]]:
    """For each node, the values it is the last reader of (placeholders and constants included)."""
    seen: set[torch.fx.Node] = set()
    last: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    for node in reversed(graph.nodes):
        if node.op == "output":
            seen.update(node.all_input_nodes)
            continue
        for value in node.all_input_nodes:
            if value not in seen:
                seen.add(value)
                last.setdefault(node, []).append(value)
    return last


def generate(gm: torch.fx.GraphModule) -> tuple[Callable[..., Any], str]:
    """A Python function equivalent to ``gm.forward`` and its source; ``gm.forward`` if it cannot."""
    namer = _Namer()
    params: list[str] = []
    lines: list[str] = []
    last_use = _last_uses(gm.graph)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            params.append(_local(node))
        elif node.op == "get_attr":
            lines.append(f"    {_local(node)} = {namer.bind(_attr(gm, node.target), str(node.target))}")
        elif node.op == "call_function":
            fn = namer.bind(_callable(node.target), getattr(node.target, "__name__", "op"))
            call = [_format(a, namer) for a in node.args]
            call += [f"{k}={_format(v, namer)}" for k, v in node.kwargs.items()]
            lines.append(f"    {_local(node)} = {fn}({', '.join(call)})")
            dead = [_local(n) for n in last_use.get(node, ())]
            if dead:  # free intermediates as soon as they are read for the last time
                lines.append(f"    del {', '.join(dead)}")
        elif node.op == "output":
            lines.append(f"    return {_format(node.args[0], namer)}")
        else:
            return gm.forward, gm.code
    source = f"def replay({', '.join(params)}):\n" + "\n".join(lines or ["    return None"]) + "\n"
    scope = dict(namer.globals)
    exec(compile(source, "<loom.func.compile replay>", "exec"), scope)
    return scope["replay"], source
