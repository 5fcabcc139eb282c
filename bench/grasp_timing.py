"""Seconds per GRASP iteration against a seeded full-size StarGAN-128 (5 edits), or against
the default surrogate set under a preset.

A mechanics measurement: default GRASP settings (or ``--preset``'s), early stop off so every
sample runs every step. The fixed cost of a run (clean edits, final statistics) is removed by
differencing a run of ``--steps`` iterations with a run of one.

    .venv/bin/python bench/grasp_timing.py [--batches 1 8] [--steps 3] [--device cpu]
                                           [--models default --preset balanced] [--crop 512]

``--models default``: the zoo's default set as ``protect`` loads it (real weights, cached).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from grasp_guard.defense.config import GraspConfig, config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.models.editor import Editor
from grasp_guard.models.zoo import load_editor, resolve_models


def faces(n: int, device: torch.device, side: int = 128) -> torch.Tensor:
    """``n`` seeded ``side``-px square crops of scikit-image's colour photographs, 8-bit quantised."""
    rng = np.random.default_rng(0)
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        cut = int(rng.integers(160, min(img.shape[:2]) + 1))
        top = int(rng.integers(0, img.shape[0] - cut + 1))
        left = int(rng.integers(0, img.shape[1] - cut + 1))
        crop = torch.from_numpy(np.ascontiguousarray(img[top:top + cut, left:left + cut]))
        crop = crop.permute(2, 0, 1)[None].float() / 255
        out.append(F.interpolate(crop, size=(side, side), mode="bilinear", antialias=True))
    return (torch.round(torch.cat(out) * 255) / 255).to(device)


def timed(x: torch.Tensor, editors: list[Editor], config: GraspConfig) -> float:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    grasp(x, editors, config)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=3, help="timed iterations per run (≥ 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+",
                        help="Zoo names (``default``: the default set) instead of the seeded StarGAN.")
    parser.add_argument("--preset", help="A preset's settings instead of GraspConfig's defaults.")
    parser.add_argument("--crop", type=int, default=128,
                        help="Crop side in px (a face's bucket: 128, 256 or 512).")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.models:
        names, _ = resolve_models(args.models)
        editors = [load_editor(name, device=device) for name in names]
        label = ", ".join(e.info.label for e in editors)
    else:
        editors = [load_editor("stargan-celeba-128", seeded=True, device=device)]
        label = "seeded StarGAN-128, 5 edits"
    config = (config_for(args.preset) if args.preset else GraspConfig()).replace(early_stop=False)
    print(f"# GRASP timing: {label}, {args.preset or 'GraspConfig()'} settings, {args.crop}-px "
          f"crops, device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()} × {os.cpu_count()} CPUs")
    print("| batch | s / iteration | s / iteration / face | fixed s / run |")
    print("|---:|---:|---:|---:|")
    timed(faces(1, device, args.crop), editors, config.replace(steps=1))  # warm-up
    for n in args.batches:
        x = faces(n, device, args.crop)
        one = timed(x, editors, config.replace(steps=1))
        many = timed(x, editors, config.replace(steps=args.steps))
        per_iter = (many - one) / (args.steps - 1)
        print(f"| {n} | {per_iter:.3f} | {per_iter / n:.3f} | {one - per_iter:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
