"""How fragile is each reference-surrogate checkpoint? Standard PGD DSR and GRASP at 40 dB.

Follows fragility through training (``train_reference --snapshot-every``): for each
checkpoint, the published PGD protocol (ε 0.05, 10 steps, one attack per crop and edit) and
GRASP's ``balanced`` preset (40 dB), both on ``--n`` held-out crops drawn with ``--crop-seed``.
Selecting a checkpoint on crop seed 1 keeps the benchmark's own crops (seed 0) out of the
choice.

    .venv/bin/python bench/reference_fragility.py --crop-seed 1 /tmp/ref/reference-step*.pt
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.quality import standard_pgd_row
from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import evaluate_editing
from grasp_guard.models.reference import REFERENCE_CONFIG, load_reference


def step_of(path: Path) -> int:
    match = re.search(r"step(\d+)", path.name)
    return int(match.group(1)) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--crop-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = eval_crops(args.n, REFERENCE_CONFIG["resolution"], offset=args.crop_seed)
    print(f"crop seed {args.crop_seed}, n {args.n}")
    print("| checkpoint | step | PGD standard DSR | PGD distortion | GRASP@40 DSR | GRASP distortion | s |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(args.checkpoints, key=step_of):
        start = time.perf_counter()
        editor = load_reference(path)
        pgd_row = standard_pgd_row("reference", editor, x)
        result = grasp(x, [editor], config_for("balanced"))
        m = evaluate_editing(editor, x, result.images)
        print(f"| {path.name} | {step_of(path)} | {pgd_row.dsr_cmua:.2f} | {pgd_row.distortion:.4f} "
              f"| {m.dsr_cmua:.2f} | {m.mean_distortion:.4f} | {time.perf_counter() - start:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
