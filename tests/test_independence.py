"""Guard rail: src/ never imports or uses the anchors it is measured against.

The anchors (torch.func, functorch, torchdata, torch's datapipes, torch DDP and its C++ Reducer) are
oracles for tests and baselines for benchmarks; Loom implements the same things itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

FORBIDDEN_MODULES = (
    "torch.func",
    "torch._functorch",
    "functorch",
    "torchdata",
    "torch.utils.data.datapipes",
    "torch.nn.parallel.distributed",
    "torch.nn.parallel.DistributedDataParallel",
    "torch.nn.parallel._functions",
    "torch._C._distributed_c10d.Reducer",
    "torch.distributed.Reducer",
)
# Names that are anchors wherever they are imported from.
FORBIDDEN_IMPORTED_NAMES = {
    "torch.nn.parallel": {"DistributedDataParallel"},
    "torch.nn": {"parallel"},
    "torch.distributed": {"Reducer"},
    "torch._C._distributed_c10d": {"Reducer"},
    "torch": {"func", "_functorch"},
    "torch.utils.data": {"datapipes"},
}


def _is_forbidden(dotted: str) -> bool:
    return any(dotted == m or dotted.startswith(m + ".") for m in FORBIDDEN_MODULES)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def forbidden_uses(source: str, filename: str = "<src>") -> list[str]:
    """Every import, attribute chain or module-name string in ``source`` that reaches an anchor."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if _is_forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _is_forbidden(node.module):
                found.append(f"{where}: from {node.module} import ...")
            bad = FORBIDDEN_IMPORTED_NAMES.get(node.module, set())
            found += [f"{where}: from {node.module} import {a.name}" for a in node.names if a.name in bad]
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted and _is_forbidden(dotted):
                found.append(f"{where}: {dotted}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_forbidden(node.value):
            found.append(f"{where}: string {node.value!r}")
    return found


def test_src_never_uses_the_anchors() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no sources found under {SRC}"
    problems = [p for f in files for p in forbidden_uses(f.read_text(), str(f.relative_to(SRC)))]
    assert not problems, "src/ must not use the anchors:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import torch.func",
        "import torch.func as tf",
        "from torch.func import vmap",
        "from torch import func",
        "import functorch",
        "from functorch import vmap",
        "from torch._functorch.vmap import vmap_impl",
        "import torchdata.datapipes",
        "from torchdata.dataloader2 import DataLoader2",
        "from torch.utils.data.datapipes.iter import Mapper",
        "from torch.utils.data import datapipes",
        "from torch.nn.parallel import DistributedDataParallel",
        "from torch.nn.parallel.distributed import DistributedDataParallel",
        "import torch\nm = torch.nn.parallel.DistributedDataParallel(model)",
        "import torch\ny = torch.func.vmap(f)(x)",
        "from torch.distributed import Reducer",
        "import torch\nr = torch._C._distributed_c10d.Reducer",
        "import importlib\nimportlib.import_module('torch.func')",
    ],
)
def test_guard_catches_each_form(source: str) -> None:
    assert forbidden_uses(source), f"the guard missed: {source!r}"


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nimport torch.distributed as dist\ndist.all_reduce(t)",
        "from torch.utils.data import IterableDataset, DataLoader",
        "import torch.fx\nfrom torch.fx.experimental.proxy_tensor import make_fx",
        "import torch.autograd.forward_ad as fwAD",
        "from torch.nn.parallel import scatter",
    ],
)
def test_guard_allows_what_loom_builds_on(source: str) -> None:
    assert not forbidden_uses(source)
