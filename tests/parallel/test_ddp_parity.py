"""Loom DDP vs torch DDP vs a single-process full-batch reference, on 2 Gloo ranks (one job, many cases).

Each case trains from the same initial weights on the same data for a few SGD steps; parameters must
match torch DDP and the reference (float32, atol 1e-6; compression hooks within their precision).
"""

from __future__ import annotations

from typing import Any

import pytest
from _par_cases import CASES
from _par_harness import run_job

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(240)]

# tolerance of each case vs the reference (exact cases: float32 rounding only)
TOLERANCE = {
    "hook_fp16": 1e-3,
    "hook_bf16": 1e-2,
    "hook_powersgd_full_rank": 1e-5,
    "checkpoint_twice_static_powersgd": 1e-5,
    "conv_channels_last_powersgd": 1e-5,
}


@pytest.fixture(scope="module")
def results() -> dict[int, Any]:
    got = run_job("_par_cases:run_parity", timeout=200)
    for rank in (0, 1):
        assert rank in got, f"rank {rank} reported nothing (crashed or timed out)"
        assert "__job_error__" not in got[rank], got[rank].get("__job_error__")
    return got


@pytest.mark.parametrize("name", list(CASES))
def test_parity(results: dict[int, Any], name: str) -> None:
    case = CASES[name]
    for rank in (0, 1):
        r = results[rank][name]
        assert "error" not in r, f"rank {rank}: {r.get('error')}"
        if case.torch_ok:
            assert r["vs_torch"] <= 1e-6, f"rank {rank}: differs from torch DDP by {r['vs_torch']}"
        assert r["vs_reference"] <= TOLERANCE.get(name, 1e-6), (
            f"rank {rank}: differs from the reference by {r['vs_reference']}"
        )
        assert r["grads_none"], f"rank {rank}: parameters left with grad=None differ from the reference"
