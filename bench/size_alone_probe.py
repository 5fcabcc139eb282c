"""One face of a photo optimised against the real CycleGAN at ONE editing size alone: how far
that size can be pushed at the budget when no other size shares the steps.

    .venv/bin/python bench/size_alone_probe.py PHOTO[:FACE],... [--size 128] [--steps 60]
                                               [--precision float32|bfloat16] [--threads 1]

The face is cut as `protect` cuts it (its bucket crop and feather weight), optimised with the
`balanced` preset (no site JPEG, no paste), and judged at that size. Prints one JSON line per face.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
from grasp_sdk.options import ProtectOptions

from grasp_guard.defense.config import PRECISIONS, config_for
from grasp_guard.defense.grasp import grasp
from grasp_guard.faces.regions import to_tensor
from grasp_guard.models.zoo import load_editor
from grasp_guard.pipeline import prepare

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces", help="Comma-separated PHOTO[:FACE] of the shared photos.")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    editor = load_editor("cyclegan-vintage")
    one_size = copy.copy(editor)
    one_size.info = dataclasses.replace(editor.info, resolution=args.size, scales=())
    config = config_for("balanced", precision=args.precision, steps=args.steps)
    for spec in args.faces.split(","):
        name, _, face = spec.partition(":")
        prepared = prepare((FACES / name).read_bytes(), ProtectOptions(preset="balanced"))
        task = prepared.tasks[int(face or 0)]
        start = time.perf_counter()
        result = grasp(to_tensor([task.crop]), [one_size], config,
                       weight=torch.from_numpy(task.weight)[None, None])
        print(json.dumps({
            "face": spec, "crop": task.crop.shape[0], "size": args.size,
            "precision": args.precision, "dsr": float(result.dsr[0]),
            "distortion": round(float(result.distortion[0]), 4),
            "psnr": round(float(result.psnr[0]), 2), "iterations": int(result.iterations[0]),
            "seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
