"""SSIM that Gaussian noise at a fixed PSNR leaves on each face crop, at the crop's own size and
with the face shrunk to 128 px: how much of a face's SSIM at 40 dB is the loop and how much
is the face.

    .venv/bin/python bench/ssim_floor.py [--faces DIR] [--psnr 40] [--small 128] [--out FILE.md]

SSIM at a given PSNR depends on the content: the same noise energy costs more SSIM on smooth
skin than on texture, and a face cut at 512 px is far smoother per pixel than the same face
shrunk to 128. The crops are the pipeline's own (detector, framing, size buckets); the SSIM
and PSNR are over the crop's pixels that lie in the photo, as the whole-photo report counts.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from grasp_guard.benchmarks.transfer import gaussian_noise
from grasp_guard.defense.metrics import psnr, ssim
from grasp_guard.faces.detect import HaarDetector
from grasp_guard.faces.regions import extract_crops, in_image_mask, plan_regions

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def noisy(crop: np.ndarray, level_db: float, seed: int) -> np.ndarray:
    """``crop`` plus seeded Gaussian noise at ``level_db`` after clamping and 8-bit rounding
    (the transfer benchmark's noise floor)."""
    x = torch.from_numpy(crop.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    out = gaussian_noise(x, level_db, seed=seed)[0].permute(1, 2, 0)
    return (out * 255.0).round().to(torch.uint8).numpy()


def shrink(crop: np.ndarray, inside: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The crop and its in-photo mask resized to ``side`` (antialiased, as an editor's resizer)."""
    small = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))
    mask = np.asarray(Image.fromarray(inside).resize((side, side), Image.Resampling.NEAREST))
    return small, mask.astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=SHARED_FACES)
    parser.add_argument("--psnr", type=float, default=40.0)
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    detector = HaarDetector()
    rows = []
    for path in sorted(args.faces.glob("*.jpg")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        regions = plan_regions(rgb.shape, detector.detect(rgb))
        for k, (region, crop) in enumerate(zip(regions, extract_crops(rgb, regions))):
            inside = in_image_mask(region)
            small, small_inside = shrink(crop, inside, args.small)
            native = noisy(crop, args.psnr, seed=k)
            shrunk = noisy(small, args.psnr, seed=k)
            rows.append((path.name, k, crop.shape[0],
                         psnr(crop, native, inside), ssim(crop, native, inside),
                         ssim(small, shrunk, small_inside)))
            print(*rows[-1], sep="\t", flush=True)
    lines = [f"| photo | face | crop px | noise PSNR | SSIM at crop size | SSIM at {args.small} px |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {k} | {s} | {p:.2f} | {a:.4f} | {b:.4f} |" for n, k, s, p, a, b in rows]
    by_side: dict[int, list[tuple[float, float]]] = {}
    for _, _, s, _, a, b in rows:
        by_side.setdefault(s, []).append((a, b))
    lines += ["", f"| crop px | faces | mean SSIM at crop size | mean SSIM at {args.small} px |",
              "|---|---|---|---|"]
    lines += [f"| {s} | {len(v)} | {statistics.mean(a for a, _ in v):.4f} | "
              f"{statistics.mean(b for _, b in v):.4f} |" for s, v in sorted(by_side.items())]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
