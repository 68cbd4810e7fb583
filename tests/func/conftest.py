"""Every loom.func test runs with the slow per-example fallback turned into an error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loom.func import set_vmap_fallback


@pytest.fixture(autouse=True)
def _fallback_is_an_error() -> Iterator[None]:
    previous = set_vmap_fallback("error")
    yield
    set_vmap_fallback(previous)
