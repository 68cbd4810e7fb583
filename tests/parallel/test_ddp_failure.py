"""A rank that dies or stops calling backward makes the others raise a clear error within the timeout."""

from __future__ import annotations

import pytest
from _par_harness import run_job

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]

PG_TIMEOUT = 5.0


@pytest.mark.parametrize("job", ["peer_dies", "peer_stalls", "peer_stalls_static"])
def test_peer_failure_is_a_clear_error(job: str) -> None:
    got = run_job(f"_par_failure:{job}", timeout=60, pg_timeout=PG_TIMEOUT, wait_for=(0,))
    assert 0 in got, "rank 0 reported nothing: it hung or crashed"
    result = got[0]
    assert "__job_error__" not in result, result.get("__job_error__")
    assert result["error"] is not None, "rank 0 finished training although its peer was gone"
    assert "a peer rank may have died or stopped calling backward" in result["error"]
    assert result["seconds"] < PG_TIMEOUT + 10, f"took {result['seconds']:.1f}s to fail"
