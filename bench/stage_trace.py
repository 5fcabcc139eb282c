"""Where a photo's protection is lost: DSR per face and editing size after each stage of the
pipeline (the loop's view, paste, the real re-encode, the budget top-up).

    .venv/bin/python bench/stage_trace.py PHOTO [--preset balanced] [--steps N] [--threads 1]

Runs `prepare` → `Engine.optimise` → paste → encode → the budget top-up with the pipeline's
own functions and the default surrogate set, and evaluates every stage's re-cut crops with
`Engine.evaluate`, as `finish` does. Prints one JSON line per stage.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from grasp_sdk.options import ProtectOptions

from grasp_guard.defense.metrics import psnr
from grasp_guard.faces.regions import extract_crops, in_image_mask, paste
from grasp_guard.media import decode, encode
from grasp_guard.pipeline import Engine, _delivery, _encode_spending_budget, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--steps", type=int, default=None, help="Cap the preset's steps.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = Engine.create()
    prepared = prepare(args.photo.read_bytes(), ProtectOptions(preset=args.preset))
    tasks, regions, image = prepared.tasks, prepared.regions, prepared.image
    start = time.perf_counter()
    outcomes = engine.optimise(tasks, max_steps=args.steps)
    seconds = time.perf_counter() - start
    protected = [o.protected for o in outcomes]
    originals = [t.crop for t in tasks]
    shown = [in_image_mask(r) for r in regions]

    def report(stage: str, crops: list[np.ndarray], **extra: object) -> None:
        faces = []
        for task, crop, inside, dsr in zip(tasks, crops, shown, engine.evaluate(originals, crops)):
            per_size = {name: {res: round(v["dsr_cmua"], 2) for res, v in
                               s.get("by_resolution", {"own": s}).items()}
                        for name, s in dsr.items()}
            distortion = {name: {res: round(v["distortion"], 4) for res, v in
                                 s.get("by_resolution", {"own": s}).items()}
                          for name, s in dsr.items()}
            faces.append({"crop": task.crop.shape[0], "psnr": round(psnr(task.crop, crop, inside), 2),
                          "dsr": per_size, "distortion": distortion,
                          "framed": {n: round(s["dsr_framed"], 3) for n, s in dsr.items()}})
        print(json.dumps({"stage": stage, "faces": faces, **extra}), flush=True)

    deltas = [o.astype(np.float32) - t.crop.astype(np.float32) for o, t in zip(protected, tasks)]

    def carried(maps: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return np.stack([maps[0].T @ delta[..., c] @ maps[1] for c in range(3)], axis=-1)

    seen = []  # the loop's own view: its own δ delivered, and its same-batch neighbours' paste
    for task, delta in zip(tasks, deltas):
        moved = carried(_delivery(task), delta)
        for j, maps in task.neighbours:
            moved += carried(maps, deltas[j])
        seen.append(np.clip(np.rint(task.crop + moved), 0, 255).astype(np.uint8))
    report("loop (delivered, no encode)", seen, seconds=round(seconds),
           site=str(tasks[0].site), iterations=[o.iterations for o in outcomes])
    pasted = paste(image.upright, regions, protected, weighted=False)
    report("pasted, not encoded", extract_crops(pasted, regions))
    once = decode(encode(image, pasted, size_mode=prepared.options.size_mode)).upright
    report("encoded once, no top-up", extract_crops(once, regions))
    _, _, finals, gains = _encode_spending_budget(prepared, protected)
    report("finished (budget top-up)", finals, gains=[round(g, 3) for g in gains])


if __name__ == "__main__":
    main()
