"""The examples in loom.parallel's public docstrings run (the DDP one in a 1-rank Gloo group)."""

from __future__ import annotations

import doctest
import importlib

import pytest
from _par_harness import free_port

NAMESPACES = ["loom.parallel", "loom.parallel.comm_hooks"]
EXAMPLES = [(name, attr) for name in NAMESPACES for attr in importlib.import_module(name).__all__]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("namespace", "attr"), EXAMPLES)
def test_docstring_example_runs(namespace: str, attr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    obj = getattr(importlib.import_module(namespace), attr)
    tests = [t for t in doctest.DocTestFinder().find(obj, f"{namespace}.{attr}", globs={}) if t.examples]
    assert tests, f"{namespace}.{attr} has no example in its docstring"
    for test in tests:
        result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
        assert result.failed == 0, f"{test.name}: {result.failed} example(s) failed"
