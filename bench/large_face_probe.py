"""One large face of a photo through the loop with its paste round trip, against the real CycleGAN:
DSR per editing size, PSNR/SSIM as re-cut, and the λ_ssim trace of the SSIM steering.

    .venv/bin/python bench/large_face_probe.py [--photo PATH] [--face 1] [--steps 30]
                                               [--variant default|no-ssim-target]
                                               [--sampling random|all|focus]
                                               [--preset balanced] [--site-jpeg Q]
                                               [--set '{"objective": "log"}'] [--threads 1]

Prints one JSON line. It isolates the loop on a face shrunk to the 512-px bucket (no re-encode,
no site transform), which is what the whole-photo bench spends its time on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from grasp_guard.defense import grasp as loop
from grasp_guard.defense.config import SCALE_SAMPLINGS, config_for
from grasp_guard.defense.metrics import (
    SUCCESS_THRESHOLD,
    batch_psnr,
    batch_ssim,
    editing_resolutions,
    evaluate_defense,
    framed_editing,
)
from grasp_guard.defense.transforms import SiteSpec, build_site_pipeline
from grasp_guard.faces.detect import HaarDetector
from grasp_guard.faces.regions import (
    delivery_maps,
    extract_crops,
    feather_mask,
    plan_regions,
    to_tensor,
)
from grasp_guard.models.zoo import load_editor

SHARED_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "couple.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=SHARED_PHOTO)
    parser.add_argument("--face", type=int, default=1, help="Which detected face (0-based).")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--variant", choices=("default", "no-ssim-target"), default="default")
    parser.add_argument("--sampling", choices=SCALE_SAMPLINGS, default=None,
                        help="Scale sampling of the loop (the preset's when not given).")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    parser.add_argument("--set", default="{}", help="JSON overrides of the preset.")
    parser.add_argument("--site-jpeg", type=int, default=None,
                        help="Optimise through the site loop's differentiable JPEG at this quality "
                             "(the pipeline does so at a JPEG source's own quality).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rgb = np.asarray(Image.open(args.photo).convert("RGB"))
    region = plan_regions(rgb.shape, HaarDetector().detect(rgb))[args.face]
    x = to_tensor(extract_crops(rgb, [region]))
    side = x.shape[-1]
    weight = torch.from_numpy(feather_mask(region))[None, None]
    maps = delivery_maps(region)
    eye = np.eye(side, dtype=np.float32)
    m = torch.from_numpy(np.stack([eye, eye]) if maps is None else maps)[None]
    overrides: dict = {"steps": args.steps, "check_every": 10}
    if args.sampling is not None:
        overrides["scale_sampling"] = args.sampling
    if args.variant == "no-ssim-target":
        overrides["ssim_target"] = None
    extra = json.loads(args.set)
    overrides.update(extra)
    config = config_for(args.preset, **overrides)
    transform = None
    if args.site_jpeg is not None:
        spec = SiteSpec(jpeg_quality=(args.site_jpeg, args.site_jpeg))
        transform = build_site_pipeline(spec, max(rgb.shape[:2]), seed=config.seed)
    editor = load_editor("cyclegan-vintage")
    trace: list[float] = []
    adapt = loop._Run._adapt_lambda_ssim

    def traced(self: loop._Run, idx: torch.Tensor, ssim: torch.Tensor) -> None:
        adapt(self, idx, ssim)
        trace.append(round(float(self.lambda_ssim[0]), 3))

    loop._Run._adapt_lambda_ssim = traced  # type: ignore[method-assign]
    start = time.perf_counter()
    result = loop.grasp(x, [editor], config, transform=transform, weight=weight, delivery=m)
    delta = result.images - x
    rows, columns = m[:, :1], m[:, 1:]
    seen = (x + rows.transpose(-1, -2) @ delta @ columns).clamp(0, 1).mul(255).round().div(255)
    out = {"photo": args.photo.name, "crop": region.crop.side, "variant": args.variant, "preset": args.preset, "site_jpeg": args.site_jpeg,
           "sampling": config.scale_sampling, "steps": config.steps, "set": extra,
           "seconds": round(time.perf_counter() - start), "psnr": float(batch_psnr(seen, x)[0]),
           "ssim": float(batch_ssim(seen, x)[0]), "lambda_ssim_trace": trace[::5] + trace[-1:]}
    for res in (128, 256, 512):
        metrics = evaluate_defense(editor, x, seen, resolution=res)
        out[f"dsr@{res}"] = float(metrics.cmua_success.double().mean())
        out[f"distortion@{res}"] = float(metrics.distortion.double().mean())
    framed = framed_editing(editor, x, seen)  # at the crop's editing sizes
    out["dsr_framed"] = framed.dsr_cmua
    sizes = editing_resolutions(editor, side)
    pairs = len(x) * len(sizes) * editor.conditions().shape[0]
    if framed.cmua_distortion.numel() % pairs:  # a zoomed framing loses a size (a 512-px crop)
        sizes = []
    by_size = framed.cmua_distortion.view(len(x), -1, max(len(sizes), 1),
                                          editor.conditions().shape[0])
    for i, res in enumerate(sizes):
        out[f"dsr_framed@{res}"] = float((by_size[:, :, i] > SUCCESS_THRESHOLD).double().mean())
        out[f"worst_framed_distance@{res}"] = round(float(by_size[:, :, i].min()), 4)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
