"""Check a copy downloaded back from a site: does the protection still disrupt the editors?"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from grasp_guard.defense.metrics import psnr, ssim
from grasp_guard.faces.detect import FaceDetector
from grasp_guard.faces.regions import extract_crops, plan_regions
from grasp_guard.media import decode
from grasp_guard.pipeline import Engine, detector_name, shared_default_detector

# Mean DSR (CMUA) over a face's edits at which it counts as protected.
PROTECTED_AT = 0.8


def common_grid(original: np.ndarray, received: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images on the smaller one's grid (sites shrink uploads; area resize, never an
    upscale): an attacker edits the copy the site has, at its size, and its clean
    counterpart is the original shrunk so."""
    h, w = original.shape[:2]
    rh, rw = received.shape[:2]
    if (rh, rw) == (h, w):
        return original, received
    if rh * rw < h * w:
        return cv2.resize(original, (rw, rh), interpolation=cv2.INTER_AREA), received
    return original, cv2.resize(received, (w, h), interpolation=cv2.INTER_AREA)


def verdict(dsr: float, dsr_framed: float) -> str:
    """Judged by the worse of our crop's DSR and the attacker's own framing's: a protection
    that holds only where our crop lies holds nowhere an attacker crops the face."""
    worst = min(dsr, dsr_framed)
    if worst >= PROTECTED_AT:
        return "protected"
    return "partially protected" if max(dsr, dsr_framed) > 0 else "unprotected"


def verify(original: bytes, received: bytes, engine: Engine,
           detector: FaceDetector | None = None) -> dict[str, Any]:
    """Per face and surrogate edit: is the received copy still disrupting the editors?

    Both copies go onto the smaller one's grid (:func:`common_grid`); faces are found on
    the original there, and both are cut into the crops the protection plans for such an
    image. ``dsr_framed``: the same with the attacker's crop a few pixels over or 7% off;
    the verdict is judged by the worse of the two (:func:`verdict`).
    """
    original_raw = decode(original).upright
    after_raw = decode(received).upright
    before, after = common_grid(original_raw, after_raw)
    detector = detector or shared_default_detector()
    boxes = detector.detect(before)
    regions = plan_regions(before.shape, boxes)
    faces: list[dict[str, Any]] = []
    if regions:
        crops_before = extract_crops(before, regions)
        crops_after = extract_crops(after, regions)
        for region, cb, ca, dsr in zip(regions, crops_before, crops_after,
                                       engine.evaluate(crops_before, crops_after)):
            mean = float(np.mean([s["dsr_cmua"] for s in dsr.values()]))
            framed = float(np.mean([s["dsr_framed"] for s in dsr.values()]))
            faces.append({
                "box": [region.face.x, region.face.y, region.face.w, region.face.h],
                "psnr": round(psnr(cb, ca), 2),
                "dsr_cmua": round(mean, 4),
                "dsr_framed": round(framed, 4),
                "verdict": verdict(mean, framed),
                "surrogates": dsr,
            })
    overall = float(np.mean([f["dsr_cmua"] for f in faces])) if faces else 0.0
    overall_framed = float(np.mean([f["dsr_framed"] for f in faces])) if faces else 0.0
    return {
        "verdict": verdict(overall, overall_framed) if faces else "no face found",
        "dsr_cmua": round(overall, 4),
        "dsr_ruiz": round(float(np.mean([s["dsr_ruiz"] for f in faces for s in f["surrogates"].values()])), 4)
        if faces else 0.0,
        "dsr_framed": round(overall_framed, 4),
        "psnr": round(psnr(before, after), 2),
        "ssim": round(ssim(before, after), 4),
        "received_size": [int(after_raw.shape[1]), int(after_raw.shape[0])],
        "original_size": [int(original_raw.shape[1]), int(original_raw.shape[0])],
        "compared_at": [int(before.shape[1]), int(before.shape[0])],
        "faces": faces,
        "surrogates": engine.labels,
        "detector": detector_name(detector),
    }
