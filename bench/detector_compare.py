"""The face detectors side by side on the shared real photos: how many faces each finds, where
they disagree, and seconds per photo.

    .venv/bin/python bench/detector_compare.py [--photos DIR] [--sheet PNG]

Needs CenterFace cached (`grasp-guard models fetch centerface`). Prints a markdown table of
the photos where the two disagree and the totals; ``--sheet`` draws every box of those photos
(red: CenterFace, green: Haar) so that each can be judged face or not by eye.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from grasp_guard.faces.choose import default_detector
from grasp_guard.faces.detect import FaceBox, FaceDetector, HaarDetector

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def timed(detector: FaceDetector, rgb: np.ndarray) -> tuple[list[FaceBox], float]:
    start = time.perf_counter()
    boxes = detector.detect(rgb)
    return boxes, time.perf_counter() - start


def describe(boxes: list[FaceBox]) -> str:
    return ", ".join(f"{b.w} px ({b.score:g})" for b in boxes) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=SHARED)
    parser.add_argument("--sheet", type=Path, default=None)
    args = parser.parse_args()
    centerface = default_detector()
    if isinstance(centerface, HaarDetector):
        raise SystemExit("CenterFace is not cached: run `grasp-guard models fetch centerface`")
    haar = HaarDetector()
    totals = {"centerface": [0, 0.0], "haar": [0, 0.0]}
    print("| photo | CenterFace: faces (side, score) | Haar: faces (side, neighbours) |")
    print("|---|---|---|")
    tiles = []
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    for path in photos:
        image = Image.open(path).convert("RGB")
        rgb = np.asarray(image)
        found = {}
        for name, detector in (("centerface", centerface), ("haar", haar)):
            found[name], seconds = timed(detector, rgb)
            totals[name][0] += len(found[name])
            totals[name][1] += seconds
        if len(found["centerface"]) != len(found["haar"]) or len(found["haar"]) != 1:
            print(f"| {path.name} | {describe(found['centerface'])} | {describe(found['haar'])} |")
            draw = ImageDraw.Draw(image)
            for name, colour in (("centerface", (255, 0, 0)), ("haar", (0, 255, 0))):
                for b in found[name]:
                    draw.rectangle([b.x, b.y, b.x1, b.y1], outline=colour, width=4)
            image.thumbnail((480, 480))
            tiles.append(image)
    n = len(photos)
    print(f"\n{n} photos. CenterFace: {totals['centerface'][0]} faces, "
          f"{totals['centerface'][1] / n:.2f} s per photo; Haar: {totals['haar'][0]} faces, "
          f"{totals['haar'][1] / n:.2f} s per photo.")
    if args.sheet is not None and tiles:
        sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        x = 0
        for tile in tiles:
            sheet.paste(tile, (x, 0))
            x += tile.width
        sheet.save(args.sheet)


if __name__ == "__main__":
    main()
