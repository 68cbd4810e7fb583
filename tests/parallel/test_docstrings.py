"""The examples in loom.parallel's public docstrings run (the DDP one in a fresh 1-rank Gloo process)."""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys

import pytest
from _par_harness import free_port

NAMESPACES = ["loom.parallel", "loom.parallel.comm_hooks"]
EXAMPLES = [(name, attr) for name in NAMESPACES for attr in importlib.import_module(name).__all__]
# examples that start a process group run in their own interpreter, away from this one's state
IN_SUBPROCESS = {("loom.parallel", "DistributedDataParallel")}

_RUNNER = """
import doctest, importlib, sys
obj = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
failed = 0
for test in doctest.DocTestFinder().find(obj, sys.argv[1] + "." + sys.argv[2], globs={}):
    failed += doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test).failed
sys.exit(1 if failed else 0)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("namespace", "attr"), EXAMPLES)
def test_docstring_example_runs(namespace: str, attr: str) -> None:
    obj = getattr(importlib.import_module(namespace), attr)
    tests = [t for t in doctest.DocTestFinder().find(obj, f"{namespace}.{attr}", globs={}) if t.examples]
    assert tests, f"{namespace}.{attr} has no example in its docstring"
    if (namespace, attr) in IN_SUBPROCESS:
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, namespace, attr],
            env=env,
            capture_output=True,
            text=True,
            timeout=80,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return
    for test in tests:
        result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
        assert result.failed == 0, f"{test.name}: {result.failed} example(s) failed"
