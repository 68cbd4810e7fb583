"""State dicts, argument and graph-change errors, join, create_graph and PowerSGD on 2 Gloo ranks (one job)."""

from __future__ import annotations

from typing import Any

import pytest
from _par_harness import run_job

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def results() -> dict[str, list[Any]]:
    got = run_job("_par_behaviour:run_behaviour", timeout=200)
    for rank in (0, 1):
        assert rank in got, f"rank {rank} reported nothing (crashed or timed out)"
        assert "__job_error__" not in got[rank], got[rank].get("__job_error__")
    by_case: dict[str, list[Any]] = {}
    for rank in (0, 1):
        for name, value in got[rank].items():
            assert "crash" not in value, f"{name} crashed on rank {rank}: {value['crash']}"
            by_case.setdefault(name, []).append(value)
    return by_case


def test_state_dict_round_trip(results: dict[str, list[Any]]) -> None:
    for r in results["state_dict_round_trip"]:
        assert r["keys"] == r["torch_keys"] and all(k.startswith("module.") for k in r["keys"])
        assert r["reloaded_diff"] == 0.0 and r["from_torch_diff"] == 0.0
        assert r["has_module"]


def test_shape_mismatch_names_parameter_and_rank(results: dict[str, list[Any]]) -> None:
    for r in results["shape_mismatch"]:
        assert r["error"] is not None
        assert r["error"].startswith("ValueError: DistributedDataParallel: parameter 2 ('fc2.weight')")
        assert "rank 0 has 'fc2.weight' of shape [16, 16]" in r["error"]
        assert "rank 1 has 'fc2.weight' of shape [8, 16]" in r["error"]


def test_argument_errors(results: dict[str, list[Any]]) -> None:
    for r in results["argument_errors"]:
        assert r["twice"].startswith("RuntimeError: register_comm_hook: a communication hook is already")
        assert r["not_callable"] == "TypeError: register_comm_hook: hook must be callable, got 3"
        assert r["bucket_cap"] == "ValueError: DistributedDataParallel: bucket_cap_mb must be > 0, got 0"
        assert r["mixed_precision"].startswith(
            "NotImplementedError: DistributedDataParallel: mixed_precision"
        )
        assert r["no_params"].startswith("RuntimeError: DistributedDataParallel: the module has no parameter")


@pytest.mark.parametrize(
    "name",
    [
        "join_uneven",
        "join_uneven_not_initial_world",
        "join_uneven_find_unused_grad_view",
        "join_uneven_static",
    ],
)
def test_join_matches_torch(results: dict[str, list[Any]], name: str) -> None:
    for r in results[name]:
        assert r["vs_torch"] <= 1e-6, f"differs from torch DDP's join by {r['vs_torch']}"
        assert r["moved"] > 1e-3  # training happened


def test_join_rank_without_inputs_under_static_graph(results: dict[str, list[Any]]) -> None:
    for r in results["join_static_rank_without_inputs"]:
        assert r["vs_reference"] <= 1e-6, f"differs from the reference by {r['vs_reference']}"


def test_join_throw_on_early_termination(results: dict[str, list[Any]]) -> None:
    for r in results["join_throw"]:
        assert r["error"] is not None and "rank(s) [0] ran out of inputs; raising on every rank" in r["error"]


def test_create_graph_synchronized_and_differentiable(results: dict[str, list[Any]]) -> None:
    for r in results["create_graph_synced"]:
        assert r["value_diff"] <= 1e-6 and r["requires_grad"]
        assert r["second_order_diff"] <= 1e-6
    for r in results["create_graph_values_only"]:
        assert r["value_diff"] <= 1e-6 and not r["requires_grad"] and r["warned"]


def test_powersgd_error_feedback(results: dict[str, list[Any]]) -> None:
    for r in results["powersgd_error_feedback"]:
        assert r["approximation_error"] > 1e-2  # rank 1 really compresses
        assert r["invariant_diff"] <= 1e-5  # nothing lost: what was left out is carried forward
        assert r["iterations"] == 5


def test_unused_parameter_without_find_unused_names_it(results: dict[str, list[Any]]) -> None:
    for rank, r in enumerate(results["unused_without_find_unused"]):
        assert r["error"] is not None and "'never.weight'" in r["error"]
        assert ("'branch.weight'" in r["error"]) == (rank == 1)
        assert "find_unused_parameters=True" in r["error"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("static_graph_change_new_param", "parameter 'extra.bias' received a gradient, it was unused"),
        (
            "static_graph_change_lost_param",
            "parameter 'extra.weight' received 0 gradient(s) in this backward",
        ),
    ],
)
def test_static_graph_change_names_parameter(results: dict[str, list[Any]], name: str, fragment: str) -> None:
    for r in results[name]:
        assert r["error"] is not None and "the graph changed after the first iteration" in r["error"]
        assert fragment in r["error"]
        assert r["after"] is None, f"the step after the error failed: {r['after']}"


def test_static_graph_sink_only_where_needed(results: dict[str, list[Any]]) -> None:
    # See NOTE [static graph] on the sink: after the record it stays only where backward's first hook
    # fires inside a reentrant (checkpointed) backward
    expected = {
        "static_sink_dropped": [True, False, False, False],
        "static_sink_dropped_for_inner_checkpoints": [True, False, False, False],
        "static_sink_kept_for_last_checkpoint": [True] * 4,
        "static_sink_kept_without_graph_task_ids": [True] * 4,
    }
    for name, sinks in expected.items():
        for r in results[name]:
            assert r["sinks"] == sinks, (name, r["sinks"])
            assert r["vs_torch"] <= 1e-6, f"{name}: differs from torch DDP by {r['vs_torch']}"


@pytest.mark.parametrize("mode", ["default", "default_static", "view", "view_static"])
def test_where_gradients_live(results: dict[str, list[Any]], mode: str) -> None:
    for r in results["grad_storage"]:
        loom, anchor = r[mode], r[mode + "_torch"]
        if mode.startswith("view"):
            # gradients are views of the buckets (a .grad kept from an earlier step may be overwritten)
            assert loom["storages"] == loom["buckets"] and anchor["storages"] < anchor["params"]
        else:
            # each gradient its own tensor; with set_to_none, one kept from step 1 is never overwritten
            assert loom["storages"] == loom["params"] == anchor["storages"]
            assert loom["kept_unchanged"] and anchor["kept_unchanged"]


def test_used_map_rides_in_the_last_bucket(results: dict[str, list[Any]]) -> None:
    for r in results["collectives_per_step"]:
        plain, hook = r["plain"], r["hook"]
        # one all-reduce per bucket, none for the used map (NOTE [the used map rides in the last bucket])
        assert len(plain["launched"]) == plain["buckets"], plain["launched"]
        assert not any("used map" in what for what in plain["launched"])
        # with a hook the map has its own all-reduce; either way the globally unused layer keeps grad=None
        assert [w for w in hook["launched"] if "used map" in w] == ["all-reduce of the used map"]
        assert plain["grads_none"] == hook["grads_none"] and plain["grads_none"]
