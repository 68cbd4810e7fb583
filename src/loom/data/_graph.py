"""Graph utilities over pipes: traverse, find, list, replace, remove, and a text or DOT rendering.

A pipe's sources are the attributes that hold a pipe, or a list, tuple, set or dict holding pipes
(one level deep), as in torchdata. A graph is ``{id(pipe): (pipe, graph_of_its_sources)}``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Union

from loom.data._datapipe import IterDataPipe, MapDataPipe

__all__ = ["find_dps", "list_dps", "remove_dp", "replace_dp", "to_graph", "traverse_dps"]

DataPipe = Union[IterDataPipe, MapDataPipe]
DataPipeGraph = dict  # {id: (pipe, DataPipeGraph)}

_PIPES = (IterDataPipe, MapDataPipe)


def _attr_values(pipe: Any) -> list[tuple[str, Any]]:
    # ``_data_attrs`` names attributes that hold user data (a wrapped list of a million elements):
    # the walk skips them instead of looking for pipes among their elements.
    skip = getattr(type(pipe), "_data_attrs", ())
    return [(k, v) for k, v in getattr(pipe, "__dict__", {}).items() if k not in skip]


def source_pipes(pipe: Any) -> list[Any]:
    """The pipes ``pipe`` reads from, in attribute order, without duplicates."""
    found: list[Any] = []
    seen: set[int] = set()

    def add(value: Any) -> None:
        if isinstance(value, _PIPES) and id(value) not in seen and value is not pipe:
            seen.add(id(value))
            found.append(value)

    for _, value in _attr_values(pipe):
        if isinstance(value, _PIPES):
            add(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                add(v)
        elif isinstance(value, dict):
            for v in value.values():
                add(v)
    return found


def _check_pipe(call: str, pipe: Any) -> None:
    if not isinstance(pipe, _PIPES):
        raise TypeError(f"{call}: expected an IterDataPipe or MapDataPipe, got {type(pipe).__name__}")


def traverse_dps(datapipe: Any) -> dict[int, tuple[Any, dict[int, Any]]]:
    """The graph ending at ``datapipe``: ``{id(pipe): (pipe, graph of its sources)}``.

    A pipe reached twice (a fork) appears in full once; later occurrences have an empty sub-graph,
    so cycles terminate.

    Example:
        >>> from loom.data import traverse_dps
        >>> from loom.data.iter import IterableWrapper
        >>> src = IterableWrapper([1]); out = src.map(str)
        >>> graph = traverse_dps(out)
        >>> graph[id(out)][0] is out and id(src) in graph[id(out)][1]
        True
    """
    _check_pipe("traverse_dps", datapipe)
    seen: set[int] = set()

    def helper(pipe: Any) -> dict[int, tuple[Any, dict[int, Any]]]:
        seen.add(id(pipe))
        sub: dict[int, tuple[Any, dict[int, Any]]] = {}
        for src in source_pipes(pipe):
            if id(src) in seen:
                sub[id(src)] = (src, {})
            else:
                sub.update(helper(src))
        return {id(pipe): (pipe, sub)}

    return helper(datapipe)


def list_dps(graph: dict[int, Any], exclude_dps: Any = None) -> list[Any]:
    """Every pipe of ``graph`` once, breadth first from the output; ``exclude_dps`` and their sources are left out.

    Example:
        >>> from loom.data import list_dps, traverse_dps
        >>> from loom.data.iter import IterableWrapper
        >>> [type(p).__name__ for p in list_dps(traverse_dps(IterableWrapper([1]).map(str)))]
        ['Mapper', 'IterableWrapper']
    """
    skip: set[int] = set()
    if exclude_dps is not None:
        excluded = [exclude_dps] if isinstance(exclude_dps, _PIPES) else list(exclude_dps)
        for ex in excluded:
            _check_pipe("list_dps(exclude_dps=...)", ex)
            if id(ex) not in skip:
                skip.update(id(p) for p in list_dps(traverse_dps(ex)))
    out: list[Any] = []
    queue: deque[tuple[int, Any, dict[int, Any]]] = deque()
    for pid, (pipe, sub) in graph.items():
        if pid not in skip:
            skip.add(pid)
            queue.append((pid, pipe, sub))
    while queue:
        _, pipe, sub = queue.popleft()
        out.append(pipe)
        for pid, (src, src_sub) in sub.items():
            if pid not in skip:
                skip.add(pid)
                queue.append((pid, src, src_sub))
    return out


def find_dps(graph: dict[int, Any], dp_type: type) -> list[Any]:
    """The pipes of ``graph`` whose type is exactly ``dp_type``, breadth first.

    Example:
        >>> from loom.data import find_dps, traverse_dps
        >>> from loom.data.iter import IterableWrapper, Mapper
        >>> len(find_dps(traverse_dps(IterableWrapper([1]).map(str).map(int)), Mapper))
        2
    """
    if not isinstance(dp_type, type):
        raise TypeError(f"find_dps: dp_type must be a class, got {dp_type!r}")
    return [p for p in list_dps(graph) if type(p) is dp_type]


def _root(call: str, graph: dict[int, Any]) -> Any:
    if not isinstance(graph, dict) or len(graph) != 1:
        raise ValueError(f"{call}: expected a graph from traverse_dps with one output pipe")
    return next(iter(graph.values()))[0]


def _swap(holder: Any, old: Any, new: Any) -> None:
    for key, value in _attr_values(holder):
        if value is old:
            setattr(holder, key, new)
        elif isinstance(value, (list, tuple)) and any(v is old for v in value):
            swapped = [new if v is old else v for v in value]
            setattr(holder, key, type(value)(swapped) if isinstance(value, tuple) else swapped)
        elif isinstance(value, dict) and any(v is old for v in value.values()):
            setattr(holder, key, {k: new if v is old else v for k, v in value.items()})


def replace_dp(graph: dict[int, Any], old_datapipe: Any, new_datapipe: Any) -> dict[int, Any]:
    """Put ``new_datapipe`` wherever ``old_datapipe`` feeds a pipe of ``graph``; returns the new graph.

    Example:
        >>> from loom.data import replace_dp, traverse_dps
        >>> from loom.data.iter import IterableWrapper
        >>> out = IterableWrapper([1, 2]).map(str)
        >>> _ = replace_dp(traverse_dps(out), out.source_datapipe, IterableWrapper([3]))
        >>> list(out)
        ['3']
    """
    root = _root("replace_dp", graph)
    _check_pipe("replace_dp", new_datapipe)
    if root is old_datapipe:
        return traverse_dps(new_datapipe)
    for pipe in list_dps(graph):
        _swap(pipe, old_datapipe, new_datapipe)
    return traverse_dps(root)


def remove_dp(graph: dict[int, Any], datapipe: Any) -> dict[int, Any]:
    """Take ``datapipe`` out of ``graph``, connecting its readers to its single source; returns the new graph.

    Raises:
        RuntimeError: ``datapipe`` is a source (nothing to connect) or has several sources.

    Example:
        >>> from loom.data import remove_dp, traverse_dps
        >>> from loom.data.iter import IterableWrapper
        >>> out = IterableWrapper([1, 2]).map(str).batch(2)
        >>> _ = remove_dp(traverse_dps(out), out.source_datapipe)
        >>> list(out)
        [[1, 2]]
    """
    root = _root("remove_dp", graph)
    sources = source_pipes(datapipe)
    if not sources:
        raise RuntimeError(f"remove_dp: cannot remove {type(datapipe).__name__}: it is a source")
    if len(sources) > 1:
        raise RuntimeError(
            f"remove_dp: cannot remove {type(datapipe).__name__}: it reads from {len(sources)} pipes"
        )
    if root is datapipe:
        return traverse_dps(sources[0])
    for pipe in list_dps(graph):
        _swap(pipe, datapipe, sources[0])
    return traverse_dps(root)


def to_graph(datapipe: Any, format: str = "text") -> str:
    """A readable rendering of the graph ending at ``datapipe``: an indented tree, or Graphviz DOT.

    Args:
        datapipe: the output pipe.
        format: ``"text"`` (default) or ``"dot"``.

    Example:
        >>> from loom.data import to_graph
        >>> from loom.data.iter import IterableWrapper
        >>> print(to_graph(IterableWrapper([1]).batch(2)))
        Batcher(batch_size=2, drop_last=False)
        └── IterableWrapper
    """
    _check_pipe("to_graph", datapipe)
    if format == "text":
        return "\n".join(_text_lines(traverse_dps(datapipe)))
    if format == "dot":
        return _dot(datapipe)
    raise ValueError(f"to_graph: format must be 'text' or 'dot', got {format!r}")


def _label(pipe: Any) -> str:
    text = repr(pipe)
    return text[:-2] if text.endswith("()") else text


def _text_lines(graph: dict[int, Any], prefix: str = "", top: bool = True) -> list[str]:
    lines: list[str] = []
    items = list(graph.values())
    for i, (pipe, sub) in enumerate(items):
        last = i == len(items) - 1
        if top:
            lines.append(_label(pipe))
            child_prefix = ""
        else:
            lines.append(prefix + ("└── " if last else "├── ") + _label(pipe))
            child_prefix = prefix + ("    " if last else "│   ")
        lines.extend(_text_lines(sub, child_prefix, top=False))
    return lines


def _dot(datapipe: Any) -> str:
    pipes = list_dps(traverse_dps(datapipe))
    index = {id(p): i for i, p in enumerate(pipes)}
    lines = ["digraph datapipes {", "  rankdir=BT;"]
    for p in pipes:
        label = _label(p).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'  n{index[id(p)]} [shape=box, label="{label}"];')
    for p in pipes:
        for src in source_pipes(p):
            lines.append(f"  n{index[id(src)]} -> n{index[id(p)]};")
    lines.append("}")
    return "\n".join(lines)
