"""A/B of the loop's zoom views: antialiased as Pillow resizes (the loop's) against point-sampled
(``grid_sample``, the loop's before 0eb78c3), the balanced preset on real face crops against
the real CycleGAN; DSR at our crop and at the attacker's framings.

    .venv/bin/python bench/zoom_views_ab.py --arm antialiased|point [--n 12] [--offset 8]
                                            [--side 128] [--threads 1]

Prints one JSON line. Faces from ``offset`` on: the presets were chosen on crops 0-7.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.defense import diversity
from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import evaluate_editing, framed_editing
from grasp_guard.models.zoo import load_editor


def point_sampled(view: diversity.RescaleShift, x: torch.Tensor) -> torch.Tensor:
    """The zoom-and-shift as the loop drew it before: one bilinear sample per pixel."""
    theta = torch.tensor([[1.0 / view.scale, 0.0, -view.dx], [0.0, 1.0 / view.scale, -view.dy]],
                         dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=("antialiased", "point"), required=True)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--offset", type=int, default=8)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.arm == "point":
        diversity.RescaleShift.__call__ = point_sampled  # type: ignore[method-assign]
    x = eval_crops(args.n, args.side, offset=args.offset)
    editor = load_editor("cyclegan-vintage")
    start = time.perf_counter()
    result = grasp(x, [editor], config_for("balanced"))
    seconds = time.perf_counter() - start
    framed = framed_editing(editor, x, result.images)
    print(json.dumps({
        "arm": args.arm, "n": args.n, "offset": args.offset, "side": args.side,
        "seconds": round(seconds), "psnr": float(result.psnr.mean()),
        "ssim": float(result.ssim.mean()), "iterations": float(result.iterations.double().mean()),
        "dsr": evaluate_editing(editor, x, result.images).dsr_cmua, "dsr_framed": framed.dsr_cmua,
        "framed_per_face": framed.cmua_success.double().mean(dim=1).tolist(),
        "worst_framed_distance": framed.cmua_distortion.min(dim=1).values.tolist(),
    }), flush=True)


if __name__ == "__main__":
    main()
