"""Judging fuzzed answers, and the stubbed engine the fuzz runs on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from grasp_guard.benchmarks.fuzz_cases import FuzzCase, seed_images
from grasp_guard.benchmarks.service_fuzz import Answer, FastEngine, judge
from grasp_guard.defense.transforms import SiteSpec
from grasp_guard.models.zoo import load_editor
from grasp_guard.pipeline import CropTask

JPEG = seed_images()["face.jpg"]
CASE = FuzzCase(0, "mutated", "test", JPEG, "image/jpeg", image=JPEG)
JSON = {"Content-Type": "application/json; charset=utf-8"}


def error(status: int, kind: str = "invalid_image", **headers: str) -> Answer:
    body = json.dumps({"error": {"kind": kind, "message": "why"}}).encode()
    return Answer(status, {**JSON, **headers}, body, 0.1)


def result(body: bytes, protected: bool, mime: str = "image/jpeg") -> Answer:
    report = json.dumps({"protected": protected})
    return Answer(200, {"Content-Type": mime, "X-Grasp-Report": report}, body, 0.1)


@pytest.mark.parametrize(("answer", "outcome"), [
    (error(400), "json_error"),
    (error(413, "too_large"), "json_error"),
    (error(429, "queue_full", **{"Retry-After": "3"}), "json_error"),
    (error(429, "queue_full"), "problem"),  # no Retry-After
    (error(500, "internal"), "problem"),
    (error(504, "deadline_exceeded"), "problem"),
    (Answer(400, {"Content-Type": "text/plain"}, b"Bad Request", 0.1), "problem"),
    (Answer(400, JSON, b'{"detail": "no error object"}', 0.1), "problem"),
    (Answer(None, {}, b"", 150.0, "no answer: TimeoutError"), "problem"),
    (result(JPEG, protected=False), "unchanged"),
    (result(JPEG + b"\0", protected=False), "problem"),  # not byte-identical
    (result(JPEG, protected=True), "result"),
    (result(JPEG, protected=True, mime="image/png"), "problem"),  # mislabelled
    (result(JPEG[:100], protected=True), "problem"),  # does not decode
    (result(seed_images()["small.jpg"], protected=True), "problem"),  # another size
])
def test_judge(answer: Answer, outcome: str) -> None:
    assert judge(CASE, answer).outcome == outcome


def test_only_an_oversized_head_may_get_aiohttp_plain_answers() -> None:
    plain = Answer(400, {"Content-Type": "text/plain; charset=utf-8"}, b"Got more", 0.1)
    head = FuzzCase(0, "oversized_head", "query", JPEG, "image/jpeg")
    assert judge(head, plain).outcome == "http_parser"
    assert judge(CASE, plain).outcome == "problem"


def test_the_fast_engine_nudges_each_crop_and_refuses_mixed_groups() -> None:
    engine = FastEngine([load_editor("reference")], torch.device("cpu"))
    crop = np.full((64, 64, 3), 255, np.uint8)
    crop[0, 0] = 0
    task = CropTask(crop, np.ones((64, 64), np.float32), "fast", SiteSpec(), 64)
    (outcome,) = engine.optimise([task])
    change = outcome.protected.astype(int) - crop
    assert (change[0, 0, 0], change[0, 1, 0], change[0, 2, 0]) == (2, -2, 0)  # ±2, clipped
    other = CropTask(crop, task.weight, "strong", SiteSpec(), 64)
    with pytest.raises(ValueError, match="share a group"):
        engine.optimise([task, other])
