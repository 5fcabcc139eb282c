"""Derive the benchmark's fixed real-face crops from ../shared/data/faces (run once; committed).

    .venv/bin/python bench/derive_face_set.py [--faces ../shared/data/faces]

Every face the project's own detector finds (Haar, grasp_guard.faces.detect) is framed the
way the pipeline frames it (grasp_guard.faces.regions.plan_regions), cut, resized (area) to
256 px and stored as JPEG q95 4:4:4 beside a manifest of where it came from. Faces whose crop
is under 128 px are left out: an editor sees them upsampled, which measures nothing. The
detector's false positives, found by looking at every crop, are listed in NOT_FACES.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from grasp_guard.benchmarks.eval_set import FACE_SET_DIR, FACE_SIDE
from grasp_guard.faces.detect import HaarDetector
from grasp_guard.faces.regions import extract_crops, plan_regions
from grasp_guard.media import decode

MIN_CROP = 128
# Haar detections that are clothing, not faces (checked by eye on a contact sheet).
NOT_FACES = {"img26-1.jpg", "img8-1.jpg", "selfie-many-people-3.jpg", "selfie-many-people-4.jpg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "faces")
    args = parser.parse_args()
    FACE_SET_DIR.mkdir(parents=True, exist_ok=True)
    for old in FACE_SET_DIR.glob("*.jpg"):
        old.unlink()
    detector = HaarDetector()
    manifest = []
    for path in sorted(args.faces.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
            continue
        data = path.read_bytes()
        rgb = decode(data).upright
        boxes = detector.detect(rgb)
        regions = plan_regions(rgb.shape, boxes) if boxes else []
        for i, (region, crop) in enumerate(zip(regions, extract_crops(rgb, regions))):
            name = f"{path.stem}-{i}.jpg"
            if region.crop.side < MIN_CROP or name in NOT_FACES:
                continue
            face = cv2.resize(crop, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
            Image.fromarray(np.ascontiguousarray(face)).save(
                FACE_SET_DIR / name, quality=95, subsampling=0)
            manifest.append({
                "file": name,
                "source": path.name,
                "source_sha256": hashlib.sha256(data).hexdigest(),
                "face_box": [region.face.x, region.face.y, region.face.w, region.face.h],
                "crop": [region.crop.x, region.crop.y, region.crop.side],
            })
    (FACE_SET_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} face crops in {FACE_SET_DIR}")


if __name__ == "__main__":
    main()
