"""Protect the shared real photos end to end with the defaults; record `bench/results/photos.md`.

    .venv/bin/python bench/photos.py [--preset balanced] [--limit N | --smallest N | --photos A,B]
                                     [--faces DIR] [--budget-s S] [--boxes JSON [--detect-only]]
                                     [--refine-steps N]

Each photo goes through `protect()` exactly as `grasp-guard protect` sends it, with the
default surrogate set (`Engine.create()`: the real CycleGAN when its weights are cached, else
the reference).
Per face, DSR (CMUA) is measured on the re-encoded output against every surrogate at each
size it may edit the face at (CycleGAN: 128 and 256 px, and 512 where the crop is that
large), plus face PSNR/SSIM and seconds per face on this machine.

``--detect-only --boxes F`` writes the faces the default detector (CenterFace once fetched,
else Haar) finds in each photo to F; ``--boxes F`` alone answers with them instead of
detecting, for a machine whose OpenCV cannot detect (OpenCV 5 has no Haar cascades).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from grasp_sdk.options import ProtectOptions
from PIL import Image

from grasp_guard.benchmarks.report import meta
from grasp_guard.defense.metrics import editing_resolutions
from grasp_guard.faces.detect import FaceBox, FaceDetector, KnownBoxes
from grasp_guard.models.editor import Editor
from grasp_guard.pipeline import (
    Engine,
    detector_name,
    prepare,
    protect,
    shared_default_detector,
)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _by_resolution(face: dict, editor: Editor) -> dict[str, float]:
    """DSR per editing size; a face edited at one size only (a small crop) under that size."""
    s = face["surrogates"][editor.info.name]
    return ({r: v["dsr_cmua"] for r, v in s.get("by_resolution", {}).items()}
            or {str(editing_resolutions(editor, face["crop"])[0]): s["dsr_cmua"]})


def _own_size_named(face: dict, editors: list[Editor]) -> dict:
    """A row face written before single sizes were named (``own``), with its size named."""
    dsr = dict(face["dsr"])
    for editor in editors:
        sizes = dsr.get(editor.info.name, {})
        if "own" in sizes:
            dsr[editor.info.name] = {str(editing_resolutions(editor, face["crop"])[0]): sizes["own"]}
    return {**face, "dsr": dsr}


class RecordingDetector:
    """A detector keeping what it found."""

    def __init__(self, inner: FaceDetector) -> None:
        self.inner = inner
        self.name = detector_name(inner)
        self.found: list[FaceBox] = []

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        self.found = self.inner.detect(rgb)
        return self.found


def _record_boxes(paths: list[Path], options: ProtectOptions, out: Path) -> None:
    detector, boxes = RecordingDetector(shared_default_detector()), {}
    for path in paths:
        prepare(path.read_bytes(), options, detector=detector)
        boxes[path.name] = [asdict(b) for b in detector.found]
    out.write_text(json.dumps(boxes, indent=1) + "\n")
    print(f"{sum(map(len, boxes.values()))} faces in {len(boxes)} photos found by "
          f"{detector.name} -> {out}")


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.width * im.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--faces", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "faces")
    parser.add_argument("--limit", type=int, help="The first N photos (by name) only.")
    parser.add_argument("--smallest", type=int,
                        help="The N photos of fewest pixels only (a sample a CPU can finish).")
    parser.add_argument("--photos", help="Comma-separated photo names, in this order.")
    parser.add_argument("--rows-from", type=Path,
                        help="Write the tables from the JSON rows an interrupted run printed.")
    parser.add_argument("--boxes", type=Path,
                        help="Faces per photo (JSON), used instead of detecting them.")
    parser.add_argument("--detect-only", action="store_true",
                        help="Write the detector's faces per photo to --boxes and stop.")
    parser.add_argument("--budget-s", type=float,
                        help="Start no photo after this many seconds; tables of those done.")
    parser.add_argument("--refine-steps", type=int,
                        help="Run a group photo's first stage again for N steps in the later "
                             "stages' context (default: the preset's, pipeline.REFINE_STEPS).")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.detect_only and args.boxes is None:
        parser.error("--detect-only writes to --boxes: name the file")
    # the revision and date the run starts at, not those of its end
    info = meta(["bench/photos.py", "--preset", args.preset,
                 *(["--limit", str(args.limit)] if args.limit else []),
                 *(["--smallest", str(args.smallest)] if args.smallest else []),
                 *(["--photos", args.photos] if args.photos else []),
                 *(["--budget-s", f"{args.budget_s:.0f}"] if args.budget_s else []),
                 *(["--refine-steps", str(args.refine_steps)] if args.refine_steps is not None
                   else [])],
                torch_threads=torch.get_num_threads())
    options = ProtectOptions(preset=args.preset)
    paths = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if args.smallest:
        paths = sorted(paths, key=_pixels)[:args.smallest]
    if args.photos:
        paths = [args.faces / name for name in args.photos.split(",")]
    paths = paths[:args.limit] if args.limit else paths
    if args.detect_only:
        return _record_boxes(paths, options, args.boxes)
    recorded = json.loads(args.boxes.read_text()) if args.boxes else None
    engine = Engine.create()
    engine.warm_up()  # lazy initialisation (a GPU's kernels) is not any one photo's seconds
    rows, faces_all = [], []
    if args.rows_from:
        rows = [json.loads(line) for line in args.rows_from.read_text().splitlines()
                if line.startswith("{")]
        rows = [{**r, "faces": [_own_size_named(f, engine.editors) for f in r["faces"]]}
                for r in rows]
        faces_all = [f for r in rows for f in r["faces"]]
        paths = []
    began = time.perf_counter()
    for path in paths:
        if args.budget_s is not None and time.perf_counter() - began > args.budget_s:
            print(f"budget of {args.budget_s:.0f} s spent: {len(rows)} photos done", flush=True)
            break
        start = time.perf_counter()
        detector = (KnownBoxes([FaceBox(**b) for b in recorded[path.name]])
                    if recorded is not None else None)
        _, report = protect(path.read_bytes(), options, engine, detector=detector,
                            refine_steps=args.refine_steps)
        seconds = time.perf_counter() - start
        faces = report["faces"]
        per_face = [{
            "crop": f["crop"], "psnr": f["psnr"], "psnr_full": f.get("psnr_full"),
            "ssim": f["ssim"], "iterations": f["iterations"],
            "budget_gain": f.get("budget_gain"),
            "dsr": {e.info.name: _by_resolution(f, e) for e in engine.editors},
            "dsr_framed": {e.info.name: f["surrogates"][e.info.name].get("dsr_framed")
                           for e in engine.editors},
        } for f in faces]
        faces_all += per_face
        rows.append({
            "photo": path.name, "format": report.get("format"), "faces": per_face,
            "psnr_image": report.get("psnr"), "ssim_image": report.get("ssim"),
            "seconds": seconds, "seconds_per_face": seconds / max(1, len(faces)),
            "size_ratio": report["size_ratio"],
        })
        print(json.dumps(rows[-1]), flush=True)
    info["photos"] = len(rows)
    if not faces_all:
        raise SystemExit("no face was protected: no tables to write")
    summary = []
    for editor in engine.editors:
        name = editor.info.name
        sizes = sorted({r for f in faces_all for r in f["dsr"][name]}, key=lambda r: (len(r), r))
        for r in sizes:
            vals = [f["dsr"][name][r] for f in faces_all if r in f["dsr"][name]]
            summary.append(f"| {name} | {r} | {len(vals)} | {np.mean(vals):.3f} | "
                           f"{np.mean([v >= 0.999 for v in vals]):.3f} |")
        framed = [f["dsr_framed"][name] for f in faces_all
                  if f.get("dsr_framed", {}).get(name) is not None]
        if framed:
            summary.append(f"| {name} | attacker's framing, every size | {len(framed)} | "
                           f"{np.mean(framed):.3f} | {np.mean([v >= 0.999 for v in framed]):.3f} |")
    n_faces = len(faces_all)
    total = sum(r["seconds"] for r in rows)
    lines = [
        "# Photos: the whole pipeline on the shared real photos, with the defaults", "",
        *(f"- {k}: `{v}`" for k, v in info.items()), "",
        (f"Surrogates: {'; '.join(engine.labels)}. Missing defaults: "
         f"{', '.join(engine.missing) or 'none'}. Preset `{args.preset}`. {len(rows)} photos, "
         f"{n_faces} faces; face PSNR mean {np.mean([f['psnr'] for f in faces_all]):.2f} dB "
         f"(min {min(f['psnr'] for f in faces_all):.2f}), face SSIM mean "
         f"{np.mean([f['ssim'] for f in faces_all]):.4f}; {total / max(1, n_faces):.1f} s per "
         "face on this machine."), "",
        ("DSR (CMUA) of each face on the re-encoded output, per surrogate and editing size (a "
         "small crop is edited at one size only). `all edits` = share of faces with every edit disrupted. "
         "`attacker's framing`: the same with the attacker's crop 1-3 px over or 7% off ours."),
        "", "| surrogate | edited at (px) | faces | mean DSR | all edits |", "|---|---|---|---|---|",
        *summary, "",
        ("Face PSNR is measured on the face crop as an editor gets it (area-shrunk to the "
         "crop's bucket); `full res` on the same square at the photo's own resolution."), "",
        "| photo | faces (crop px) | PSNR face | PSNR face, full res | SSIM face | DSR per surrogate@size | s/face | size ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fs = r["faces"]
        dsr = "; ".join(", ".join(f"{n}@{k} {v:.2f}" for n, d in f["dsr"].items()
                                  for k, v in d.items()) for f in fs) or "-"
        full = [f["psnr_full"] for f in fs if f.get("psnr_full") is not None]
        face = (f"{np.mean([f['psnr'] for f in fs]):.2f} | "
                f"{f'{np.mean(full):.2f}' if full else '-'} | {np.mean([f['ssim'] for f in fs]):.4f}"
                if fs else "- | - | -")
        lines.append(f"| {r['photo']} | {len(fs)} ({', '.join(str(f['crop']) for f in fs)}) | "
                     f"{face} | {dsr} | {r['seconds_per_face']:.1f} | {r['size_ratio']:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "photos.md").write_text("\n".join(lines) + "\n")
    (args.out / "photos.json").write_text(json.dumps({"rows": rows, "meta": info}, indent=2) + "\n")


if __name__ == "__main__":
    main()
