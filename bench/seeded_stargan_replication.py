"""Replicate the seeded StarGAN-128 psnr40 rows of the quality table on crops it never saw.

Runs each method at the budget the benchmark calibrated for it (read from
`bench/results/quality-models.json`), with the models part's iterations, on ``--n`` crops drawn with
``--crop-seed`` (the astronaut face, which every seed shares, left out), and prints one row per
method. Run methods in separate processes to use both cores:

    OMP_NUM_THREADS=1 .venv/bin/python bench/seeded_stargan_replication.py --method grasp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.quality import PARTS, evaluate, methods
from grasp_guard.models.zoo import load_editor

MODEL, LEVEL = "stargan-celeba-128", "psnr40"
TABLE = Path(__file__).parent / "results" / "quality-models.json"


def table_row(method: str) -> dict[str, float]:
    rows = json.loads(TABLE.read_text())["rows"]
    return next(r for r in rows if (r["method"], r["model"], r["level"]) == (method, MODEL, LEVEL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("pgd", "weighted_sum", "grasp"), required=True)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--crop-seed", type=int, default=1)
    args = parser.parse_args()
    row = table_row(args.method)
    method = methods(steps=PARTS["models"].steps)[args.method]
    editor = load_editor(MODEL, seeded=True)
    x = eval_crops(args.n, editor.info.resolution, offset=args.crop_seed)
    start = time.perf_counter()
    result = method.run(x, [editor], row["budget"])
    m = evaluate(result, x, [editor])
    print(f"| {args.method} | {args.crop_seed} | {args.n} | {row['budget'] * 255:.2f}/255 "
          f"| {m['psnr']:.2f} | {m['ssim']:.4f} | {m['dsr_cmua']:.2f} | {m['distortion']:.4f} "
          f"| {(time.perf_counter() - start) / args.n:.0f} |", flush=True)


if __name__ == "__main__":
    main()
