"""Every public namespace has a sorted, complete, importable ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import loom


def _public_modules() -> list[str]:
    names = ["loom"]
    for info in pkgutil.walk_packages(loom.__path__, "loom."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def test_the_three_subsystems_are_public() -> None:
    assert {"loom.data", "loom.func", "loom.parallel"} <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not exist"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(getattr(module, "__all__", []))
    missing = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or isinstance(value, types.ModuleType):
            continue
        defined_in = getattr(value, "__module__", None) or ""
        is_loom_object = (inspect.isclass(value) or inspect.isfunction(value)) and defined_in.startswith(
            "loom"
        )
        if is_loom_object and attr not in exported:
            missing.append(attr)
    assert not missing, f"{name} has public names missing from __all__: {missing}"


@pytest.mark.parametrize("name", [m for m in PUBLIC_MODULES if m != "loom"])
def test_exports_say_their_public_path(name: str) -> None:
    module = importlib.import_module(name)
    for attr in getattr(module, "__all__", []):
        value = getattr(module, attr)
        if inspect.isclass(value) or inspect.isfunction(value):
            # Defined in a private module but re-exported here: reprs and docs should say the public path.
            assert not value.__module__.split(".")[-1].startswith("_"), (
                f"{name}.{attr}.__module__ is {value.__module__!r}; set it to a public path"
            )


def test_version() -> None:
    assert isinstance(loom.__version__, str) and loom.__version__[0].isdigit()
