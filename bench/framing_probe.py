"""The framing-robust loop (`balanced`) on a few real face crops against the real CycleGAN:
PSNR, SSIM, DSR at our crop and at the attacker's framings, for one variant of the loop.

    .venv/bin/python bench/framing_probe.py [--offset 0] [--n 8] [--psnr 40.3]
                                            [--set '{"steps": 80}'] [--texture-power P]

Prints one JSON line. A quick probe of one knob (n = 8 runs in minutes), not a table row:
rows come from `grasp-guard bench quality`. ``--set`` overrides fields of the preset;
``--texture-power P`` weights each pixel's step by (2σ² + C₂)^P of the clean crop's local
variance σ² in SSIM's window (max-normalised): the perturbation moved into texture, where
SSIM forgives it (to first order SSIM falls by Σ var(δ) / (2σ² + C₂) per window).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.quality import load_bench_editor
from grasp_guard.defense import losses
from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import evaluate_editing, framed_editing


def texture_weight(x: torch.Tensor, power: float) -> torch.Tensor:
    """(N, 1, H, W) in (0, 1]: (2σ² + C₂)^power over SSIM's Gaussian window, channel mean."""
    window = losses.gaussian_kernel1d(losses.SSIM_WINDOW, losses.SSIM_SIGMA, x.dtype)
    mu = losses.gaussian_blur(x, window)
    var = (losses.gaussian_blur(x * x, window) - mu * mu).clamp_min(0.0)
    weight = ((2.0 * var + losses.SSIM_C2) ** power).mean(dim=1, keepdim=True)
    return weight / weight.amax(dim=(1, 2, 3), keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--psnr", type=float, default=40.3, help="the loop's PSNR budget")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--set", default="{}", help="JSON overrides of the balanced preset")
    parser.add_argument("--texture-power", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"steps": args.steps, "psnr_budget": args.psnr, **json.loads(args.set)}
    editor = load_bench_editor("cyclegan-vintage", seeded=False)
    x = eval_crops(args.n, 128, offset=args.offset)
    weight = texture_weight(x, args.texture_power) if args.texture_power else None
    start = time.perf_counter()
    result = grasp(x, [editor], config_for("balanced", **overrides), weight=weight)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "offset": args.offset, "n": args.n, "overrides": overrides,
        "texture_power": args.texture_power,
        "psnr": round(float(result.psnr.double().mean()), 2),
        "ssim": round(float(result.ssim.double().mean()), 4),
        "dsr": round(evaluate_editing(editor, x, result.images).dsr_cmua, 3),
        "dsr_framed": round(framed_editing(editor, x, result.images).dsr_cmua, 3),
        "s_per_face": round(seconds / args.n, 1),
    }))


if __name__ == "__main__":
    main()
