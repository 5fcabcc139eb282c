"""Standard PGD on the seeded StarGAN-128, crop by crop: per-edit distortion against contrast.

Explains the benchmark's `pgd`/`standard` DSR on seeded weights: a random net's edits barely
depend on the label, so each crop's five pairs share one distortion, and that distortion
follows the crop's contrast (the first instance norm divides a fixed-size perturbation by the
crop's own spread). The DSR is then the share of crops below a contrast cut-off.

    OMP_NUM_THREADS=1 .venv/bin/python bench/seeded_stargan_pairs.py --n 8 --seed 0
"""

from __future__ import annotations

import argparse
import time

import torch

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.defense.baselines import pgd
from grasp_guard.defense.metrics import clean_edits, pair_distortions, run_edits
from grasp_guard.models.zoo import load_editor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    args = parser.parse_args()
    editor = load_editor("stargan-celeba-128", seeded=True, seed=args.seed)
    x = eval_crops(args.n, 128)
    cond = editor.conditions().unsqueeze(1)
    print("| crop | std | CMUA distortion per edit | PSNR | s |\n|---|---|---|---|---|")
    for i in range(args.n):
        start = time.perf_counter()
        xi = x[i : i + 1]
        result = pgd(xi, [editor], per_edit=True)
        images = result.images[0]
        clean, mask = clean_edits(editor, xi.expand(len(images), -1, -1, -1), cond)
        with torch.no_grad():
            _, cmua = pair_distortions(run_edits(editor, images, cond), clean, mask)
        print(f"| {i} | {float(xi.std()):.3f} | {' '.join(f'{v:.3f}' for v in cmua.flatten())} "
              f"| {float(result.psnr.mean()):.1f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
