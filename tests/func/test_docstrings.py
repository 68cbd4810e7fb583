"""Every public loom.func transform has a docstring whose example runs."""

from __future__ import annotations

import doctest

import pytest

import loom.func

NAMES = [
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


@pytest.mark.parametrize("name", NAMES)
def test_docstring_example_runs(name: str) -> None:
    obj = getattr(loom.func, name)
    assert obj.__doc__ and "Example:" in obj.__doc__, f"{name} has no example"
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(obj, name, globs={})
    assert tests and tests[0].examples, f"{name}: no runnable example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{name}: the docstring example failed"
