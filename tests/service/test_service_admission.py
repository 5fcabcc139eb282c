"""Admission: the batch time estimates, the replayed schedule and the admit/refuse decision."""

from __future__ import annotations

import math
from collections.abc import Hashable

import pytest

from grasp_guard.service.admission import (
    FINISH_PRIOR_S,
    HEADROOM,
    Crop,
    Ewma,
    ServiceTimes,
    busy_until,
    decide,
    merge_snapshots,
    optimise_by,
    schedule,
)

A, B = "group-a", "group-b"


Timings = dict[str, list[tuple[int, float]]]


def times_of(batches: Timings | None = None, prior_s: float = 60.0) -> ServiceTimes:
    """Estimates with the given (size, seconds) timings observed per group name."""
    times = ServiceTimes(prior_s)
    batches = batches or {}
    for group, observed in batches.items():
        for size, seconds in observed:
            times.observe(group, size, seconds, at=0.0)
    return times


def crops(owner: str, group: str, n: int, enqueued: float = 0.0) -> list[Crop]:
    return [Crop(owner, group, enqueued) for _ in range(n)]


def test_ewma_first_observation_replaces_the_prior_then_weighs_in() -> None:
    mean = Ewma(100.0, weight=0.25)
    assert mean.value == mean.upper == 100.0
    mean.observe(4.0)
    assert (mean.value, mean.deviation, mean.upper) == (4.0, 2.0, 12.0)
    mean.observe(8.0)
    assert mean.value == pytest.approx(5.0)
    assert mean.deviation == pytest.approx(0.75 * 2.0 + 0.25 * 4.0)
    assert mean.upper == pytest.approx(5.0 + 4 * 2.5)


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_ewma_weight_must_be_a_share(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        Ewma(1.0, weight)


@pytest.mark.parametrize(("observed", "size", "expected"), [
    ([], 1, 60.0),  # the prior, per crop
    ([], 3, 180.0),  # ... with no gain from batching
    ([(4, 8.0)], 4, 8.0),  # a measured size answers itself
    ([(4, 8.0)], 2, 8.0),  # smaller: never longer than a bigger batch
    ([(4, 8.0)], 8, 16.0),  # bigger: a crop never takes longer in a bigger batch
    ([(2, 3.0), (8, 4.0)], 4, 4.0),  # GPU-like: the bigger batch bounds tighter
    ([(1, 1.0), (8, 8.0)], 4, 4.0),  # CPU-like: the per-crop time bounds tighter
])
def test_batch_seconds_from_the_prior_and_the_sizes_seen(
        observed: list[tuple[int, float]], size: int, expected: float) -> None:
    assert times_of({A: observed}).batch_seconds(A, size) == pytest.approx(expected)


def test_timings_are_weighted_per_group_and_size() -> None:
    times = times_of({A: [(2, 10.0), (2, 20.0)], B: [(2, 1.0)]})
    assert times.batch_seconds(A, 2) == pytest.approx(0.3 * 20.0 + 0.7 * 10.0)
    assert times.batch_seconds(B, 2) == 1.0
    assert times.measured(A) and not times.measured("never-seen")


def test_finish_stage_starts_at_its_prior_and_learns_with_its_spread() -> None:
    times = ServiceTimes(1.0)
    assert times.finish_seconds == FINISH_PRIOR_S
    times.observe_finish(0.4)
    assert times.finish_seconds == pytest.approx(0.4 + 4 * 0.2)
    for _ in range(40):
        times.observe_finish(0.4)
    assert times.finish_seconds == pytest.approx(0.4, abs=0.01)  # steady: little spread


@pytest.mark.parametrize(("size", "seconds"), [(0, 1.0), (1, -1.0), (1, math.nan)])
def test_observe_rejects_impossible_timings(size: int, seconds: float) -> None:
    with pytest.raises(ValueError, match="batch needs"):
        ServiceTimes(1.0).observe(A, size, seconds, at=0.0)


def test_prior_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prior"):
        ServiceTimes(0.0)


def test_retime_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="re-timing"):
        ServiceTimes(1.0, retime_s=0.0)


@pytest.mark.parametrize(("timed_at", "now", "due_in"), [
    (None, 0.0, 0.0),  # never timed
    (0.0, 299.5, 0.5),
    (0.0, 300.0, 0.0),
    (0.0, 900.0, 0.0),
    (200.0, 300.5, 199.5),  # the newest timing counts
])
def test_a_group_is_due_for_timing_when_never_or_long_ago_timed(
        timed_at: float | None, now: float, due_in: float) -> None:
    times = ServiceTimes(1.0, retime_s=300.0)
    times.observe(A, 1, 5.0, at=0.0)
    if timed_at is not None:
        times.observe(B, 1, 5.0, at=0.0)
        times.observe(B, 2, 6.0, at=timed_at)
    assert times.due_in(B, now) == pytest.approx(due_in)


def test_a_fresh_timing_replaces_the_group_timings_that_are_due() -> None:
    times = ServiceTimes(1.0, retime_s=300.0)
    times.observe(A, 4, 400.0, at=0.0)  # during a load spike
    times.observe(A, 1, 100.0, at=0.0)
    times.observe(A, 2, 300.0, at=100.0)
    times.observe(A, 1, 5.0, at=350.0)  # the spike has passed
    # Replaced, not averaged: size 1 is the new timing, size 4 is bounded by it (4 × 5 s);
    # the size-2 timing is recent enough to be kept.
    assert times.batch_seconds(A, 1) == pytest.approx(5.0)
    assert times.batch_seconds(A, 4) == pytest.approx(20.0)
    assert times.batch_seconds(A, 2) == pytest.approx(300.0)


def test_optimise_by_leaves_the_last_stages_and_headroom() -> None:
    times = ServiceTimes(1.0)
    assert optimise_by(100.0, 120.0, times, rounds=3) == pytest.approx(
        100.0 + 120.0 * (1 - HEADROOM) - 3 * FINISH_PRIOR_S)


@pytest.mark.parametrize(("now", "expected"), [
    (0.0, 10.0),  # not started long ago: its estimate
    (9.0, 10.0),
    (12.0, 24.0),  # past its estimate: as long again as it has run
])
def test_busy_until(now: float, expected: float) -> None:
    assert busy_until(0.0, 10.0, now) == expected


def test_schedule_replays_the_worker_order() -> None:
    # A (oldest) with 5 crops in batches of 4 + 1; B waits behind A's first batch only,
    # because A's remaining crop is younger than B's.
    times = times_of({A: [(4, 4.0), (1, 1.0)], B: [(2, 2.0)]})
    pending: dict[Hashable, list[Crop]] = {
        A: crops("a1", A, 4, 0.0) + crops("a2", A, 1, 5.0), B: crops("b", B, 2, 1.0)}
    done = schedule(pending, times, start=10.0, max_batch=4, gather_s=0.0)
    assert done == {"a1": 14.0, "b": 16.0, "a2": 17.0}


def test_schedule_waits_for_the_gather_window_of_a_batch_that_is_not_full() -> None:
    times = times_of({A: [(1, 1.0)]})
    done = schedule({A: crops("a", A, 1, 5.0)}, times, start=0.0, max_batch=4, gather_s=0.5)
    assert done == {"a": 6.5}


def test_idle_device_takes_a_request_even_past_its_deadline() -> None:
    decision = decide({}, crops("new", A, 1, 0.0), {"new": 1.0}, times_of(),
                      now=0.0, free_at=None, max_batch=4, gather_s=0.0)
    assert decision.admit and decision.expected_s == 60.0


def test_a_request_that_fits_is_taken() -> None:
    times = times_of({A: [(1, 2.0)]})
    pending: dict[Hashable, list[Crop]] = {A: crops("old", A, 4, 0.0)}
    decision = decide(pending, crops("new", A, 1, 1.0), {"old": 100.0, "new": 20.0}, times,
                      now=1.0, free_at=3.0, max_batch=4, gather_s=0.0)
    # Device free at 3; the old crops' batch of 4 (8 s) to 11; the new crop alone to 13.
    assert decision.admit and decision.expected_s == pytest.approx(12.0)
    assert decision.retry_after_s == 0


def test_a_request_that_would_finish_late_is_told_when_it_would_fit() -> None:
    times = times_of({A: [(1, 2.0)]})
    pending: dict[Hashable, list[Crop]] = {A: crops("old", A, 4, 0.0)}
    decision = decide(pending, crops("new", A, 1, 1.0), {"old": 100.0, "new": 8.5}, times,
                      now=1.0, free_at=3.0, max_batch=4, gather_s=0.0)
    # Expected at 13, due at 8.5: 4.5 s late, so retry once 5 s of work have drained.
    assert not decision.admit and decision.expected_s == pytest.approx(12.0)
    assert decision.retry_after_s == 5
    assert "past the" in decision.reason


def test_a_request_too_long_even_alone_waits_for_an_idle_device() -> None:
    times = times_of({A: [(1, 30.0)]})
    pending: dict[Hashable, list[Crop]] = {A: crops("old", A, 1, 0.0)}
    decision = decide(pending, crops("new", B, 1, 0.0), {"old": 100.0, "new": 20.0}, times,
                      now=0.0, free_at=5.0, max_batch=4, gather_s=0.0)
    # Its prior alone (60 s) exceeds the 20 s left: retry when the device is idle (5 + 30).
    assert not decision.admit and decision.retry_after_s == 35
    assert "alone exceeds" in decision.reason


def test_joining_a_waiting_batch_must_not_make_an_admitted_request_late() -> None:
    times = times_of({A: [(1, 2.0)], B: [(1, 2.0)]})
    pending: dict[Hashable, list[Crop]] = {A: crops("a", A, 2, 0.0), B: crops("b", B, 1, 1.0)}
    # From now (2): A's batch of 2 ends at 6, B's at 8 (due 8.5). With the new crop, A's batch
    # of 3 ends at 8 and B's at 10: the new request (due 10) fits, b would be late.
    decision = decide(pending, crops("new", A, 1, 2.0), {"a": 50.0, "b": 8.5, "new": 10.0},
                      times, now=2.0, free_at=None, max_batch=4, gather_s=0.0)
    assert not decision.admit and "late" in decision.reason
    assert decision.retry_after_s == 6  # until b's crops are done, at 8


def test_a_request_already_late_does_not_block_others() -> None:
    times = times_of({A: [(1, 2.0)], B: [(1, 2.0)]})
    pending: dict[Hashable, list[Crop]] = {A: crops("a", A, 2, 0.0), B: crops("b", B, 1, 1.0)}
    decision = decide(pending, crops("new", A, 1, 2.0), {"a": 50.0, "b": 7.0, "new": 10.0},
                      times, now=2.0, free_at=None, max_batch=4, gather_s=0.0)
    assert decision.admit


def slow_group(retime_s: float = 300.0) -> ServiceTimes:
    """A group timed at 0 s (under a load spike) far slower than any deadline."""
    times = ServiceTimes(60.0, retime_s=retime_s)
    times.observe(A, 1, 500.0, at=0.0)
    return times


def test_a_group_timed_too_slow_is_refused_until_its_timing_is_due() -> None:
    decision = decide({}, crops("new", A, 1, 100.0), {"new": 200.0}, slow_group(),
                      now=100.0, free_at=None, max_batch=4, gather_s=0.0)
    assert not decision.admit and "alone exceeds" in decision.reason
    assert decision.retry_after_s == 200  # timed at 0, due at 300


def test_an_idle_device_retimes_a_group_whose_timing_is_due() -> None:
    decision = decide({}, crops("new", A, 1, 301.0), {"new": 401.0}, slow_group(),
                      now=301.0, free_at=None, max_batch=4, gather_s=0.0)
    assert decision.admit and "free to time" in decision.reason
    assert decision.expected_s == pytest.approx(500.0)  # the estimate, whatever it says


@pytest.mark.parametrize(("pending", "free_at"), [
    ({B: crops("b", B, 1, 300.0)}, None),  # a crop waits
    ({}, 310.0),  # the device runs a batch
])
def test_a_due_timing_waits_for_an_idle_device(pending: dict[Hashable, list[Crop]],
                                               free_at: float | None) -> None:
    times = slow_group()
    times.observe(B, 1, 1.0, at=300.0)
    decision = decide(pending, crops("new", A, 1, 301.0), {"new": 401.0, "b": 1000.0}, times,
                      now=301.0, free_at=free_at, max_batch=4, gather_s=0.0)
    assert not decision.admit


def test_a_new_instance_starts_from_anothers_timings_as_old_as_they_were() -> None:
    peer = ServiceTimes(60.0, retime_s=300.0)
    peer.observe(A, 1, 10.0, at=100.0)
    peer.observe(A, 1, 20.0, at=120.0)
    peer.observe(B, 2, 8.0, at=130.0)
    snapshot = peer.snapshot(now=150.0)
    assert snapshot == {A: {1: (13.0, 6.25, 2, 30.0)}, B: {2: (8.0, 4.0, 1, 20.0)}}
    fresh = ServiceTimes(60.0, retime_s=300.0)
    fresh.observe(B, 1, 3.0, at=990.0)  # its own timing of B stays its own
    fresh.adopt(snapshot, now=1000.0)
    assert fresh.batch_seconds(A, 1) == 13.0 and fresh.batch_seconds(B, 2) == 6.0
    assert fresh.due_in(A, now=1000.0) == 270.0
    # With A adopted, a second request of A fits behind the first; with the prior it did not.
    request = ({A: crops("old", A, 1, 1000.0)}, crops("new", A, 1, 1000.0),
               {"old": 1100.0, "new": 1100.0})
    assert decide(*request, fresh, now=1000.0, free_at=None, max_batch=4, gather_s=0.0).admit
    assert not decide(*request, ServiceTimes(60.0), now=1000.0, free_at=None, max_batch=4,
                      gather_s=0.0).admit


def test_merged_snapshots_age_and_keep_the_newest_timing_of_each_group() -> None:
    known = {A: {1: (10.0, 1.0, 3, 5.0)}, B: {1: (4.0, 1.0, 1, 50.0)}}
    new = {A: {1: (99.0, 1.0, 1, 20.0)}, B: {2: (6.0, 1.0, 1, 1.0)}}
    assert merge_snapshots(known, new, elapsed=10.0) == {
        A: {1: (10.0, 1.0, 3, 15.0)},  # 15 s old beats 20 s old
        B: {2: (6.0, 1.0, 1, 1.0)},  # the newer timing replaces the group's
    }


def test_a_decision_is_about_one_request() -> None:
    with pytest.raises(ValueError, match="exactly one request"):
        decide({}, [Crop("x", A, 0.0), Crop("y", A, 0.0)], {}, times_of(), now=0.0,
               free_at=None, max_batch=4, gather_s=0.0)


def test_the_groups_timed_are_bounded_the_stalest_going_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grasp_guard.service.admission.MAX_GROUPS", 3)
    times = ServiceTimes(prior_s=1.0)
    for at, group in enumerate(["a", "b", "c", "d"]):
        times.observe(group, 1, 5.0, at=float(at))
    assert [times.measured(g) for g in "abcd"] == [False, True, True, True]
    assert times.batch_seconds("a", 1) == 1.0  # back to the prior
