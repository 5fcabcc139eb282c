"""Protect full-size photos end to end and record `bench/results/photos.md`.

    python bench/photos.py [--preset balanced] [--out bench/results]

The photos are built from scikit-image's public-domain samples (the astronaut's face on
camera-sized canvases, one and two faces, JPEG/PNG/WebP), since no face photo dataset can
be downloaded here.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import piexif
import torch
from grasp_sdk.options import ProtectOptions
from PIL import Image
from skimage import data

from grasp_guard.benchmarks.report import meta
from grasp_guard.pipeline import Engine, protect


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"bench", piexif.ImageIFD.Orientation: 1}})
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, **({"quality": 90} if fmt == "WEBP" else {}))
    return out.getvalue()


def photos() -> dict[str, bytes]:
    face = data.astronaut()
    big = cv2.resize(face, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    canvas = cv2.resize(data.coffee(), (3000, 2000), interpolation=cv2.INTER_CUBIC)
    canvas[200:1224, 300:1324] = cv2.resize(face, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    canvas[900:1412, 1900:2412] = face
    return {
        "astronaut 512x512 JPEG": _jpeg(face),
        "astronaut 2048x2048 JPEG (4x upscale)": _jpeg(big),
        "two faces 3000x2000 JPEG": _jpeg(canvas),
        "astronaut 512x512 PNG": _encode(face, "PNG"),
        "astronaut 512x512 WebP q90": _encode(face, "WEBP"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    engine = Engine.create(("reference",), "auto")
    options = ProtectOptions(preset=args.preset)
    rows = []
    for name, src in photos().items():
        start = time.perf_counter()
        _, report = protect(src, options, engine)
        seconds = time.perf_counter() - start
        faces = report["faces"]
        rows.append({
            "photo": name, "faces": len(faces), "psnr_image": report["psnr"],
            "ssim_image": report["ssim"],
            "psnr_face": float(np.mean([f["psnr"] for f in faces])) if faces else None,
            "ssim_face": float(np.mean([f["ssim"] for f in faces])) if faces else None,
            "dsr_cmua": report.get("dsr_cmua"), "seconds": seconds,
            "size_ratio": report["size_ratio"], "crops": [f["crop"] for f in faces],
        })
        print(json.dumps(rows[-1]), flush=True)
    info = meta(["bench/photos.py", "--preset", args.preset], torch_threads=torch.get_num_threads())
    lines = [
        "# Photos: the whole pipeline on full-size photos", "",
        *(f"- {k}: `{v}`" for k, v in info.items()), "",
        (f"Surrogate: {engine.labels[0]}. Preset `{args.preset}`. PSNR/SSIM after re-encoding in "
         "the source format; DSR (CMUA) on the re-encoded output, mean over faces and edits."), "",
        "| photo | faces (crop px) | PSNR image | SSIM image | PSNR face | SSIM face | DSR CMUA | s/photo | size ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        face = (f"{r['psnr_face']:.2f} | {r['ssim_face']:.4f}" if r["faces"] else "- | -")
        lines.append(f"| {r['photo']} | {r['faces']} ({', '.join(map(str, r['crops']))}) | "
                     f"{r['psnr_image']:.2f} | {r['ssim_image']:.4f} | {face} | "
                     f"{r['dsr_cmua'] if r['dsr_cmua'] is not None else '-'} | "
                     f"{r['seconds']:.1f} | {r['size_ratio']:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "photos.md").write_text("\n".join(lines) + "\n")
    (args.out / "photos.json").write_text(json.dumps({"rows": rows, "meta": info}, indent=2) + "\n")


if __name__ == "__main__":
    main()
