"""`grasp-guard bench robustness`: does the protection survive the site's own processing?

GRASP with and without the site-pipeline loop (expectation over differentiable JPEG / resize,
``defense/transforms.py``), each tuned to the same PSNR level, then measured after REAL
processing: Pillow JPEG re-encoding (4:2:0) at several qualities, a 0.5 resize, and both.
The reference for each measurement is the clean crop through the same processing, so the
figure isolates whether the perturbation survives, not the processing's own damage.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.quality import LEVELS, Method, bench_side, calibrate
from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import evaluate_editing
from grasp_guard.defense.transforms import SiteSpec, build_site_pipeline
from grasp_guard.faces.regions import from_tensor, to_tensor
from grasp_guard.models.editor import Editor

RealTransform = Callable[[np.ndarray], np.ndarray]


def jpeg(quality: int) -> RealTransform:
    def apply(rgb: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling="4:2:0")
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return apply


def half_size(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w // 2, h // 2), Image.Resampling.BICUBIC,
                                                  reducing_gap=None))


def both(quality: int) -> RealTransform:
    return lambda rgb: jpeg(quality)(half_size(rgb))


PROCESSING: dict[str, RealTransform] = {
    "none": lambda rgb: rgb,
    "jpeg95": jpeg(95),
    "jpeg85": jpeg(85),
    "jpeg80": jpeg(80),
    "jpeg75": jpeg(75),
    "resize0.5": half_size,
    "resize0.5+jpeg80": both(80),
}


@dataclass
class RobustnessRow:
    method: str
    level: str
    crop_side: int  # the crop's side in pixels as protected and processed
    n: int
    psnr: float
    ssim: float
    dsr: dict[str, float]  # DSR (CMUA) after each processing
    sec_per_face: float


def dsr_after(editor: Editor, x: torch.Tensor, adv: torch.Tensor, processing: RealTransform) -> float:
    """DSR (CMUA) of edits of the processed protected crops against the processed clean ones."""
    clean = to_tensor([processing(c) for c in from_tensor(x)])
    protected = to_tensor([processing(c) for c in from_tensor(adv)])
    return evaluate_editing(editor, clean, protected).dsr_cmua


def site_method(name: str, spec: SiteSpec | None, long_side: int) -> Method:
    """GRASP (balanced preset) with the site loop of ``spec`` (None: without the loop)."""
    base = config_for("balanced")

    def run(x: torch.Tensor, editors: Sequence[Editor], b: float):  # type: ignore[no-untyped-def]
        transform = build_site_pipeline(spec, long_side, seed=base.seed) if spec else None
        return grasp(x, editors, base.with_budget(b), transform=transform)

    return Method(name, run, initial_budget=base.budget)


VARIANTS = ("grasp", "grasp+site-jpeg80", "grasp+site-jpeg75-85+resize0.5")


def robustness_rows(editor: Editor, n: int, levels: Sequence[str], calib_n: int,
                    crop_scale: int = 1, variants: Sequence[str] = VARIANTS) -> list[RobustnessRow]:
    """``variants`` at every level on ``n`` crops of ``crop_scale`` × the editor's benchmark
    side (its smallest editing size).

    At scale 1 the face is already as small as the editor's input, so a 0.5 resize halves the
    detail the editor sees (the worst case); at scale 2 the site's resize brings the face to
    the editor's own resolution, as it does for a face of an ordinary upload.
    """
    side = bench_side(editor) * crop_scale
    x = eval_crops(n, side)
    specs = {
        "grasp": None,
        "grasp+site-jpeg80": SiteSpec(jpeg_quality=(80, 80)),
        "grasp+site-jpeg75-85+resize0.5": SiteSpec(jpeg_quality=(75, 85), max_side=side // 2),
    }
    rows = []
    for level in levels:
        for name in variants:
            spec = specs[name]
            method = site_method(name, spec, side)
            cal = calibrate(method, x[:calib_n], [editor], LEVELS[level])
            start = time.perf_counter()
            result = method.run(x, [editor], cal.budget)
            seconds = time.perf_counter() - start
            dsr = {p: dsr_after(editor, x, result.images, fn) for p, fn in PROCESSING.items()}
            rows.append(RobustnessRow(name, level, side, n, float(result.psnr.mean()),
                                      float(result.ssim.mean()), dsr, seconds / n))
    return rows


def markdown(rows: Sequence[RobustnessRow]) -> str:
    procs = list(PROCESSING)
    head = ["method", "level", "crop", "n", "PSNR", "SSIM", *[f"DSR {p}" for p in procs],
            "kept after jpeg80", "s/face"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        kept = r.dsr["jpeg80"] / r.dsr["none"] if r.dsr["none"] > 0 else float("nan")
        lines.append(f"| {r.method} | {r.level} | {r.crop_side} px | {r.n} | {r.psnr:.2f} | {r.ssim:.4f} | "
                     + " | ".join(f"{r.dsr[p]:.2f}" for p in procs)
                     + f" | {kept:.0%} | {r.sec_per_face:.2f} |")
    return "\n".join(lines)
