"""Where a group photo's protection goes: faces whose crops overlap, optimised in turn or apart.

    .venv/bin/python bench/overlap_probe.py [--photo PATH] [--steps 25]
        [--apart | --reverse | --refine N [--blind]]
    .venv/bin/python bench/overlap_probe.py --census [--faces DIR]

`protect` optimises only a photo's faces of one crop size jointly; crops of other sizes that
overlap them are optimised in turn, smallest first, each stage seeing what the earlier ones
pasted into its crops (``PreparedImage.stages``). This runs the pipeline's own crops (the
default detector, `balanced` capped at ``--steps``) that way and prints, per face, the mean
distortion of the real CycleGAN's edit at each size and the framed DSR of the photo with
every crop pasted (what leaves).

``--apart`` optimises every group at once, none seeing the others (the product before
stages), and also prints the rows of each face's own protected crop and of the photo with
only its own crop pasted. ``--reverse`` runs the stages largest crop first. ``--refine N``
then runs the first stage again for N steps from its outcomes in the later stages' context
(``optimise_prepared(refine_steps=N)``: the product's second pass, ``pipeline.REFINE_STEPS``,
which this probe leaves out unless named); ``--blind`` is its control, the same extra steps
without that context. Each face's PSNR is printed too: its own perturbation over the pixels
its paste keeps, and its crop as re-cut with every crop pasted.

``--census`` optimises nothing: for each photo in ``--faces`` with several faces, the crop
sides the default detector's faces get and which faces overlap a face of another crop size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from grasp_sdk.options import ProtectOptions

from grasp_guard.defense.metrics import psnr
from grasp_guard.faces.regions import extract_crops, in_image_mask, paste
from grasp_guard.pipeline import Engine, PreparedImage, _overlaps, optimise_prepared, prepare


def _pasted(p: PreparedImage, crops: list[np.ndarray]) -> list[np.ndarray]:
    """Every region's crop re-cut from the photo with ``crops`` pasted (an original crop
    pastes nothing)."""
    return extract_crops(paste(p.image.upright, p.regions, crops, weighted=False), p.regions)


def _distortions(engine: Engine, originals: list[np.ndarray],
                 crops: list[np.ndarray]) -> list[dict[str, float]]:
    rows = []
    for face in engine.evaluate(originals, crops):
        s = face["cyclegan-vintage"]
        rows.append({r: round(v["distortion"], 4) for r, v in s.get("by_resolution", {}).items()}
                    | {"framed": round(s["dsr_framed"], 2)})
    return rows


def _census(faces: Path) -> None:
    total = apart_total = 0
    for path in sorted(faces.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
            continue
        p = prepare(path.read_bytes(), ProtectOptions())
        keys, overlaps = [t.group_key for t in p.tasks], _overlaps(p.regions)
        apart = [i for i, near in enumerate(overlaps) if any(keys[j] != keys[i] for j in near)]
        total, apart_total = total + len(p.regions), apart_total + len(apart)
        if len(p.regions) > 1:
            print(path.name, "crops", [r.crop.side for r in p.regions], "optimised apart from "
                  "an overlapping face:", apart, flush=True)
    print(f"{apart_total} of {total} faces overlap a face of another crop size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path,
                        default=Path("../shared/data/faces/selfie-many-people.jpg"))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--apart", action="store_true")
    parser.add_argument("--reverse", action="store_true",
                        help="run the product's stages in reverse order (largest crop first "
                             "where each group overlaps the one before, as on the selfie)")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="then run the first stage again for STEPS steps (at most "
                             "--steps) from its outcomes, in the later stages' context")
    parser.add_argument("--blind", action="store_true",
                        help="with --refine: the control, the first stage's extra steps "
                             "without the later stages' context")
    parser.add_argument("--census", action="store_true")
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces"))
    args = parser.parse_args()
    if args.census:
        _census(args.faces)
        return
    p = prepare(args.photo.read_bytes(), ProtectOptions())
    engine = Engine.create()
    start = time.time()
    stages = [range(len(p.tasks))] if args.apart else p.stages()  # apart: all groups at once
    if args.reverse:
        stages = stages[::-1]
    print("stages", [list(s) for s in stages], flush=True)
    refine = 0 if args.blind else args.refine
    outcomes = optimise_prepared(p, engine, stages=stages, max_steps=args.steps,
                                 refine_steps=refine)
    if args.blind and args.refine:  # a first stage of one crop size: one batch
        first = list(stages[0])
        own = {i: outcomes[i] for i in first}  # its own outcomes only: no context
        again = engine.optimise(p.in_context(first, own), max_steps=min(args.refine, args.steps))
        for i, outcome in zip(first, again):
            outcomes[i] = outcome
    protected = [o.protected for o in outcomes]
    print(f"optimised in {time.time() - start:.0f} s", flush=True)
    originals = [t.crop for t in p.tasks]
    pasted = _pasted(p, protected)
    rows = {"with neighbours": _distortions(engine, originals, pasted)}
    for i, (t, own, recut) in enumerate(zip(p.tasks, protected, pasted)):
        print(i, "psnr: own δ over its pixels", round(psnr(t.crop, own, t.weight > 0), 2),
              "| crop as re-cut", round(psnr(t.crop, recut, in_image_mask(p.regions[i])), 2),
              "| share", round(t.budget_share, 3), flush=True)
    if args.apart:
        alone = [_pasted(p, [c if j == i else o for j, (c, o) in enumerate(zip(protected, originals))])[i]
                 for i in range(len(protected))]
        rows = {"own": _distortions(engine, originals, protected),
                "pasted alone": _distortions(engine, originals, alone), **rows}
    for i, region in enumerate(p.regions):
        print(i, region.crop.side, " | ".join(f"{k} {v[i]}" for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
