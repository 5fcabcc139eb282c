"""The compact JSON report sent in the ``X-Grasp-Report`` header of a protected image."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from grasp_guard.json_report import finite

REPORT_HEADER = "X-Grasp-Report"
MAX_HEADER_CHARS = 6000
"""Clients cap a header line near 8 KiB (aiohttp: 8190 bytes); past this the per-face rows
and notes are left out and ``truncated`` is set."""

_FACE_KEYS = ("box", "crop", "psnr", "psnr_full", "ssim", "iterations", "budget_gain", "batch_size")


def _dsr(faces: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per surrogate: the mean over faces of both DSRs."""
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for face in faces:
        for name, metrics in face.get("surrogates", {}).items():
            rows[name].append(metrics)
    return {
        name: {
            "cmua": round(sum(r["dsr_cmua"] for r in rs) / len(rs), 4),
            "ruiz": round(sum(r["dsr_ruiz"] for r in rs) / len(rs), 4),
        }
        for name, rs in rows.items()
    }


def compact_report(report: dict[str, Any], seconds: dict[str, float]) -> dict[str, Any]:
    """The service's report from the engine's: faces counted, DSR per surrogate.

    Args:
        report: what :func:`grasp_guard.pipeline.finish` returned.
        seconds: the service's own timings (queue wait, total), merged into the engine's.
    """
    faces = list(report.get("faces", []))
    compact: dict[str, Any] = {
        "protected": bool(report.get("protected", False)),
        "faces": len(faces),
    }
    if not compact["protected"]:
        compact["reason"] = report.get("reason", "")
    for key in ("format", "psnr", "ssim", "whole_image", "bytes_in", "bytes_out", "detector"):
        if key in report:
            compact[key] = report[key]
    if faces:
        compact["dsr"] = _dsr(faces)
        compact["surrogates"] = report.get("surrogates", [])
        compact["regions"] = [{k: f[k] for k in _FACE_KEYS if k in f} for f in faces]
    if report.get("notes"):
        compact["notes"] = list(report["notes"])
    compact["seconds"] = {**report.get("seconds", {}),
                          **{k: round(v, 3) for k, v in seconds.items()}}
    return finite(compact)


def report_header(report: dict[str, Any]) -> str:
    """``report`` as one ASCII JSON line short enough for a header."""
    text = json.dumps(report, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_HEADER_CHARS:
        trimmed = {k: v for k, v in report.items() if k not in ("regions", "notes")}
        trimmed["truncated"] = True
        text = json.dumps(trimmed, separators=(",", ":"), allow_nan=False)
    return text
