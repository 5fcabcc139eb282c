"""Check a copy downloaded back from a site: does the protection still disrupt the editors?"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from grasp_guard.defense.metrics import psnr, ssim
from grasp_guard.errors import NotComparableError
from grasp_guard.faces.detect import FaceDetector
from grasp_guard.faces.regions import extract_crops, in_image_mask, plan_regions
from grasp_guard.media import decode
from grasp_guard.pipeline import Engine, detector_name, shared_default_detector

# DSR (CMUA) over a face's edits, by every editor and at every framing, at which it counts
# as protected.
PROTECTED_AT = 0.8
# Under this PSNR (dB) of the two copies on one grid, the received copy is another photo, or
# one the site changed past comparing (a protected copy re-encoded by a site sits near 35).
COMPARABLE_PSNR = 25.0
SAME_ASPECT = 0.01  # relative difference of aspect ratios under which a copy is only resized
_MIN_MATCHES = 12  # feature matches that must agree on where a cropped copy lies
_MAX_TILT = 0.5  # degrees: a site crops and scales, it does not rotate
_MIN_SIDE = 32  # px: smaller images have too few features to place one in the other


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


def locate(original: np.ndarray, received: np.ndarray) -> np.ndarray | None:
    """Where a cropped (and scaled) copy lies in the original: the 2x3 similarity taking
    original pixel coordinates to the copy's, from ORB matches agreed on by RANSAC; None
    when too few agree, they say the copy is rotated, or an image is too small to match.

    The original is first shrunk near the copy's scale (which a copy showing part of it
    is at least), so matches are found at any shrink, not only within ORB's own pyramid."""
    h, w = original.shape[:2]
    rh, rw = received.shape[:2]
    if min(h, w, rh, rw) < _MIN_SIDE:
        return None
    shrink = 2 * max(rw / w, rh / h)
    if shrink < 0.5:  # past what ORB's pyramid spans (1.2^7), with room
        size = (max(_MIN_SIDE, round(w * shrink)), max(_MIN_SIDE, round(h * shrink)))
        seen = cv2.resize(original, size, interpolation=cv2.INTER_AREA)
    else:
        size, seen = (w, h), original
    orb = cv2.ORB_create(4000)
    try:
        (kp_o, des_o), (kp_r, des_r) = [orb.detectAndCompute(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY),
                                                              None) for im in (seen, received)]
    except cv2.error:
        return None
    if des_o is None or des_r is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_o, des_r)
    if len(matches) < _MIN_MATCHES:
        return None
    src = np.float32([kp_o[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_r[m.trainIdx].pt for m in matches])
    similarity, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                      ransacReprojThreshold=2.0)
    if similarity is None or int(inliers.sum()) < _MIN_MATCHES:
        return None
    if abs(np.degrees(np.arctan2(similarity[1, 0], similarity[0, 0]))) > _MAX_TILT:
        return None
    return (np.vstack([similarity, [0, 0, 1]]) @ _resize_map((w, h), size))[:2]


def _resize_map(before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """The 3x3 map of pixel coordinates that cv2.resize from ``before`` to ``after`` (W, H)
    applies (pixel centres at integers)."""
    fx, fy = after[0] / before[0], after[1] / before[1]
    return np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])


def cropped_grid(original: np.ndarray, received: np.ndarray,
                 similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both on the coarser one's grid, the original cut to the part the copy shows; None
    when the copy shows more than the original has."""
    h, w = original.shape[:2]
    rh, rw = received.shape[:2]
    scale = float(np.hypot(similarity[0, 0], similarity[1, 0]))
    if abs(scale - 1) * max(h, w) < 0.5:  # a crop alone (under half a pixel of scale): cut it
        x, y = (round(-float(t)) for t in similarity[:, 2])
        if x < 0 or y < 0 or x + rw > w or y + rh > h:
            return None
        return original[y:y + rh, x:x + rw], received
    to_copy = np.vstack([similarity, [0, 0, 1]])
    if scale <= 1:  # the copy is the coarser: shrink the original to its scale first
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        source = cv2.resize(original, size, interpolation=cv2.INTER_AREA)
        warp, out, after = to_copy @ np.linalg.inv(_resize_map((w, h), size)), (rw, rh), received
    else:  # the original is the coarser: shrink the copy to the original's scale
        out = (max(1, round(rw / scale)), max(1, round(rh / scale)))
        after = cv2.resize(received, out, interpolation=cv2.INTER_AREA)
        source, warp = original, _resize_map((rw, rh), out) @ to_copy
    corners = np.array([[0, 0, 1], [out[0] - 1, 0, 1], [0, out[1] - 1, 1],
                        [out[0] - 1, out[1] - 1, 1]], dtype=float).T
    inside = (np.linalg.inv(warp) @ corners)[:2]
    sh, sw = source.shape[:2]
    if inside.min() < -1 or (inside[0] > sw).any() or (inside[1] > sh).any():
        return None
    before = cv2.warpAffine(source, _refined(source, after, warp), out,
                            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    return before, after


def _refined(source: np.ndarray, target: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """The 2x3 map from ``target``'s pixels to ``source``'s, ``warp`` (source to target, from
    feature matches: a few tenths of a pixel off) refined by ECC to a hundredth or so."""
    start = np.linalg.inv(warp)[:2].astype(np.float32)
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) for im in (target, source)]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-6)
    try:
        _, refined = cv2.findTransformECC(*gray, start, cv2.MOTION_AFFINE, criteria, None, 1)
    except cv2.error:  # did not converge: the matches' estimate stands
        return start
    return refined


def aligned(original: np.ndarray, received: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both copies on one grid, pixel for pixel: the better of the copy resized whole (when
    it keeps the original's aspect ratio) and the copy located in it (a site's crop, also
    of a few pixels, which a resize would leave out of register: :func:`locate`); None when
    neither is within :data:`COMPARABLE_PSNR` (another photo, or changed past comparing)."""
    h, w = original.shape[:2]
    rh, rw = received.shape[:2]
    pairs = []
    if abs((w / h) / (rw / rh) - 1) <= SAME_ASPECT:
        pairs.append(common_grid(original, received))
    similarity = locate(original, received)
    if similarity is not None and (pair := cropped_grid(original, received, similarity)):
        pairs.append(pair)
    best = max(pairs, key=lambda pair: psnr(*pair), default=None)
    return best if best is not None and psnr(*best) >= COMPARABLE_PSNR else None


def verdict(*dsr: float) -> str:
    """Judged by the worst of the DSRs given: our crop's and the attacker's own framing's, of
    every editor, of every face. A protection that holds only where our crop lies holds
    nowhere an attacker crops the face; one that holds against one editor does not hold
    against the other, and a photo with one face left open is not protected (a mean would
    call a face protected against one editor and not the other, or a group photo with one
    face open, protected)."""
    if min(dsr) >= PROTECTED_AT:
        return "protected"
    return "partially protected" if max(dsr) > 0 else "unprotected"


def _scores(surrogates: dict[str, dict[str, float]]) -> list[float]:
    """A face's DSRs that its verdict weighs: each editor's, at our crop and framed."""
    return [s[key] for s in surrogates.values() for key in ("dsr_cmua", "dsr_framed")]


def verify(original: bytes, received: bytes, engine: Engine,
           detector: FaceDetector | None = None) -> dict[str, Any]:
    """Per face and surrogate edit: is the received copy still disrupting the editors?

    Both copies go onto one grid, the coarser one's (:func:`aligned`: resized, or the part
    of the original a site's crop kept); faces are found on the original there, and both
    are cut into the crops the protection plans for such an image. ``dsr_framed``: the same
    with the attacker's crop a few pixels over or 7% off. A face's and the photo's DSRs are
    means (over editors, then faces); their verdicts are the worst case (:func:`verdict`).

    Raises:
        NotComparableError: the copies do not line up (:func:`aligned`).
    """
    original_raw = decode(original).upright
    after_raw = decode(received).upright
    pair = aligned(original_raw, after_raw)
    if pair is None:
        raise NotComparableError(
            f"the received copy does not line up with the original (under {COMPARABLE_PSNR:g} "
            "dB resized to it and located in it as a crop): another photo, or one the site "
            "changed past comparing; no verdict")
    before, after = pair
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
                "psnr": round(psnr(cb, ca, in_image_mask(region)), 2),  # not the mirrored padding
                "dsr_cmua": round(mean, 4),
                "dsr_framed": round(framed, 4),
                "verdict": verdict(*_scores(dsr)),
                "surrogates": dsr,
            })
    overall = float(np.mean([f["dsr_cmua"] for f in faces])) if faces else 0.0
    overall_framed = float(np.mean([f["dsr_framed"] for f in faces])) if faces else 0.0
    return {
        "verdict": verdict(*(d for f in faces for d in _scores(f["surrogates"])))
        if faces else "no face found",
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
