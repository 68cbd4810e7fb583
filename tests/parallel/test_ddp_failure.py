"""A rank that dies or stops calling backward makes the others raise a clear error within the timeout."""

from __future__ import annotations

from typing import Any

import pytest
from _par_failure import GROUP_TIMEOUT
from _par_harness import run_job

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(150)]

SCENARIOS = ["peer_stalls", "peer_stalls_static_grad_view", "peer_stalls_find_unused", "peer_dies"]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    got = run_job("_par_failure:run_failures", timeout=120, wait_for=(0,))
    assert 0 in got, "rank 0 reported nothing: it hung or crashed"
    assert "__job_error__" not in got[0], got[0].get("__job_error__")
    return got[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_peer_failure_is_a_clear_error(results: dict[str, Any], scenario: str) -> None:
    result = results[scenario]
    assert result["error"] is not None, "rank 0 finished training although its peer was gone"
    assert "a peer rank may have died or stopped calling backward" in result["error"]
    assert result["seconds"] < GROUP_TIMEOUT + 10, f"took {result['seconds']:.1f}s to fail"
