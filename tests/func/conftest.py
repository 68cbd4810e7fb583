"""Every loom.func test runs with the slow per-example fallback turned into an error; ``float64`` on request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from loom.func import set_vmap_fallback


@pytest.fixture(autouse=True)
def _fallback_is_an_error() -> Iterator[None]:
    previous = set_vmap_fallback("error")
    yield
    set_vmap_fallback(previous)


@pytest.fixture(autouse=True, scope="session")
def _forward_ad_decompositions_loaded() -> None:
    # torch loads its forward-AD decompositions (via torch.jit.script, with a DeprecationWarning) on the
    # first make_dual; load them once here so that whichever test or oracle calls jvp first is not hit.
    import warnings

    import torch.autograd.forward_ad as fwad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loader = getattr(fwad, "_maybe_load_decompositions", None)
        if loader is not None:
            loader()


@pytest.fixture
def float64() -> Iterator[None]:
    """Default dtype float64 and seed 0 for the test (``pytestmark = pytest.mark.usefixtures("float64")``)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
