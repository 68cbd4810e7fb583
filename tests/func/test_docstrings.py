"""Every public loom.func transform has a docstring whose example runs."""

from __future__ import annotations

import doctest

import pytest

import loom.func
from loom.func._batched import forget_handler
from loom.func._rules._table import RULES

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
    saved = dict(RULES)  # register_batch_rule's example registers a rule: put the table back afterwards
    try:
        for test in tests:
            runner.run(test, clear_globs=False)
    finally:
        for op in set(RULES) | set(saved):
            if RULES.get(op) is not saved.get(op):
                if op in saved:
                    RULES[op] = saved[op]
                else:
                    del RULES[op]
                forget_handler(op)
    assert runner.failures == 0, f"{name}: the docstring example failed"
