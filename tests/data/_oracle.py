"""The anchors, for comparing behaviour: torch's built-in datapipes and torchdata 0.9 when installed."""

from __future__ import annotations

import pytest
import torch.utils.data.datapipes.iter as torch_iter  # noqa: F401
import torch.utils.data.datapipes.map as torch_map  # noqa: F401


def torchdata_iter():  # type: ignore[no-untyped-def]
    """``torchdata.datapipes.iter``, or skip the test."""
    return pytest.importorskip("torchdata.datapipes.iter")


def torchdata_map():  # type: ignore[no-untyped-def]
    return pytest.importorskip("torchdata.datapipes.map")
