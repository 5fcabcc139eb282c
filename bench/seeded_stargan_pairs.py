"""Standard PGD on the seeded StarGAN-128, crop by crop: raw initialisation vs calibrated output.

Explains the benchmark's `pgd`/`standard` DSR on seeded weights. A random net's edits barely
depend on the label, so each crop is attacked on its first edit only. Every conv but the
last is followed by an instance norm, so a random net's fragility is set by the last conv's
scale and by the crop's contrast (the first norm divides a fixed-size perturbation by the
crop's own spread). `raw` is PyTorch's default initialisation, as the official training
starts from; `calibrated` is what `load_editor(..., seeded=True)` returns: the last conv
scaled so the edits of six held-in samples have those samples' contrast.

    OMP_NUM_THREADS=1 .venv/bin/python bench/seeded_stargan_pairs.py --n 8 --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import time

import torch

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.defense.baselines import pgd
from grasp_guard.defense.metrics import SUCCESS_THRESHOLD, clean_edits, pair_distortions, run_edits
from grasp_guard.models.editor import Editor
from grasp_guard.models.seeded import calibration_images, match_output_contrast
from grasp_guard.models.stargan import StarGANEditor
from grasp_guard.models.zoo import load_editor


def first_edit_distortions(editor: Editor, x: torch.Tensor) -> list[float]:
    """CMUA distortion of each crop's first edit after standard PGD on that edit."""
    cond = editor.conditions()[:1].unsqueeze(1)
    out = []
    for i in range(len(x)):
        xi = x[i : i + 1]
        result = pgd(xi, [editor], per_edit=True, conditions=[cond[0]])
        clean, mask = clean_edits(editor, xi, cond)
        with torch.no_grad():
            _, cmua = pair_distortions(run_edits(editor, result.images[0], cond), clean, mask)
        out.append(float(cmua.flatten()[0]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    x = eval_crops(args.n, 128)
    print("crop std: " + " ".join(f"{float(xi.std()):.3f}" for xi in x))
    print("| seed | weights | output scale | CMUA distortion per crop | DSR | s |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        editor = load_editor("stargan-celeba-128", seeded=True, seed=seed, match_contrast=False)
        assert isinstance(editor, StarGANEditor)
        for weights in ("raw", "calibrated"):
            scale = 1.0
            if weights == "calibrated":
                scale = match_output_contrast(editor, editor.generator.output_conv,
                                              calibration_images(128))
            start = time.perf_counter()
            d = first_edit_distortions(editor, x)
            dsr = sum(v > SUCCESS_THRESHOLD for v in d) / len(d)
            print(f"| {seed} | {weights} | {scale:.3f} | {' '.join(f'{v:.3f}' for v in d)} "
                  f"| {dsr:.2f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
