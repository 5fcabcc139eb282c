"""Fuzz cases: a pure function of (seed, index), every kind in the mix, the forms as labelled."""

from __future__ import annotations

from collections import Counter

import pytest

from grasp_guard.benchmarks.fuzz_cases import KINDS, MAX_BYTES, make_case, seed_images
from grasp_guard.media import decode


def test_a_case_is_a_function_of_seed_and_index_alone() -> None:
    assert make_case(3, 17) == make_case(3, 17)
    assert make_case(3, 17) != make_case(4, 17)
    assert make_case(3, 17) != make_case(3, 18)


def test_the_mix_holds_every_kind_near_its_share() -> None:
    kinds = Counter(make_case(0, i).kind for i in range(2000))
    total = sum(weight for _, weight in KINDS.values())
    for kind, (_, weight) in KINDS.items():
        if weight >= 1:
            assert kinds[kind] == pytest.approx(2000 * weight / total, rel=0.5), kind
    assert set(kinds) <= set(KINDS)


def test_seeds_are_valid_images_with_metadata() -> None:
    seeds = seed_images()
    for name in ("face.jpg", "face.png", "face.webp", "face.heic"):
        assert decode(seeds[name]).upright.shape == (256, 256, 3), name
    assert decode(seeds["face.jpg"]).orientation == 6


def test_a_well_formed_multipart_case_names_its_image() -> None:
    forms = [c for c in (make_case(1, i) for i in range(300)) if c.kind == "multipart"]
    well_formed = [c for c in forms if c.detail.endswith("well-formed")]
    broken = [c for c in forms if not c.detail.endswith("well-formed")]
    assert well_formed and broken
    for case in well_formed:
        assert case.content_type is not None and case.content_type.startswith("multipart/")
        assert case.image is not None and case.image in case.body
    assert all(c.image is None for c in broken)


def test_too_large_bodies_pass_the_byte_limit() -> None:
    case = next(c for c in (make_case(0, i) for i in range(5000)) if c.kind == "too_large")
    assert len(case.body) > MAX_BYTES
