"""The engine's errors keep what they carry across processes (the Ray backend's replicas)."""

from __future__ import annotations

import pickle

from grasp_guard.errors import DeadlineExceededError, QueueFullError


def test_errors_survive_a_pickle_round_trip() -> None:
    late = pickle.loads(pickle.dumps(DeadlineExceededError("late", started=True)))
    assert isinstance(late, DeadlineExceededError) and late.started and str(late) == "late"
    full = pickle.loads(pickle.dumps(QueueFullError("full", retry_after_s=7)))
    assert full.retry_after_s == 7 and str(full) == "full"
