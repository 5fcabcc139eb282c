"""The compact X-Grasp-Report: counts, DSR per surrogate, JSON-safe, header-sized."""

from __future__ import annotations

import json
from typing import Any

from grasp_guard.service.report import MAX_HEADER_CHARS, compact_report, report_header


def _face(cmua: float, ruiz: float, psnr: float = 41.0) -> dict[str, Any]:
    return {"box": [1, 2, 30, 30], "crop": 64, "psnr": psnr, "ssim": 0.99, "iterations": 5,
            "batch_size": 2, "surrogates": {"reference": {"dsr_cmua": cmua, "dsr_ruiz": ruiz,
                                                          "distortion": 0.1}}}


def test_protected_report_counts_faces_and_averages_dsr_per_surrogate() -> None:
    engine_report = {"protected": True, "format": "JPEG", "faces": [_face(1.0, 0.5), _face(0.0, 0.5)],
                     "psnr": 44.0, "ssim": 0.995, "bytes_in": 100, "bytes_out": 90,
                     "surrogates": ["reference (...)"], "notes": ["thumbnail regenerated"],
                     "detector": "centerface", "seconds": {"decode": 0.01}}
    report = compact_report(engine_report, {"queue": 0.12345, "total": 1.0})
    assert report["protected"] is True and report["faces"] == 2
    assert report["dsr"] == {"reference": {"cmua": 0.5, "ruiz": 0.5}}
    assert report["regions"][0] == {"box": [1, 2, 30, 30], "crop": 64, "psnr": 41.0,
                                    "ssim": 0.99, "iterations": 5, "batch_size": 2}
    assert report["seconds"] == {"decode": 0.01, "queue": 0.123, "total": 1.0}
    assert report["notes"] == ["thumbnail regenerated"]
    assert report["detector"] == "centerface"
    assert json.loads(report_header(report)) == report


def test_unprotected_report_says_why() -> None:
    report = compact_report({"protected": False, "reason": "no face found", "faces": [],
                             "detector": "haar"}, {})
    assert report["protected"] is False and report["faces"] == 0 and report["detector"] == "haar"
    assert report["reason"] == "no face found" and "dsr" not in report


def test_non_finite_numbers_become_null() -> None:
    report = compact_report({"protected": True, "faces": [_face(1.0, 1.0, float("inf"))],
                             "psnr": float("nan")}, {})
    text = report_header(report)
    parsed = json.loads(text)
    assert parsed["psnr"] is None and parsed["regions"][0]["psnr"] is None


def test_header_is_ascii_and_trimmed_when_too_long() -> None:
    faces = [_face(1.0, 1.0) for _ in range(200)]
    report = compact_report({"protected": True, "faces": faces, "notes": ["é"]}, {})
    text = report_header(report)
    assert text.isascii() and len(text) <= MAX_HEADER_CHARS
    parsed = json.loads(text)
    assert parsed["truncated"] is True and parsed["faces"] == 200 and "regions" not in parsed
