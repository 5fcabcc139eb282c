"""Optimise a photo's faces once, then finish it (paste, encode, top-up, measure) as often as
needed: the same optimised crops, finished by two revisions of the code, isolate what the
finishing step does.

    .venv/bin/python bench/finish_probe.py --photo P --save crops.npz [--preset balanced]
    PYTHONPATH=<checkout> .venv/bin/python bench/finish_probe.py --photo P --load crops.npz

``--save`` runs the pipeline's optimisation (`optimise_prepared`, the preset's steps and
second pass) with the default surrogate set and keeps the protected crops; ``--load`` finishes
them (`finish`) and prints each face's PSNR, budget gain, DSR and distortion per editing size
(`own`: an editor's one size) and margin (where the revision reports it), as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from grasp_sdk.options import ProtectOptions

from grasp_guard.pipeline import CropOutcome, Engine, finish, optimise_prepared, prepare


def _sizes(surrogate: dict) -> dict[str, dict]:
    """A surrogate's metrics per editing size; ``own`` for an editor run at one size."""
    return surrogate.get("by_resolution") or {"own": surrogate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--preset", default="balanced")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="optimise and keep the protected crops here")
    action.add_argument("--load", type=Path, help="finish the crops kept here")
    args = parser.parse_args()
    prepared = prepare(args.photo.read_bytes(), ProtectOptions(preset=args.preset))
    engine = Engine.create()
    if args.save:
        start = time.perf_counter()
        outcomes = optimise_prepared(prepared, engine)
        np.savez_compressed(args.save, *[o.protected for o in outcomes],
                            iterations=[o.iterations for o in outcomes])
        print(f"{len(outcomes)} crops optimised in {time.perf_counter() - start:.0f} s "
              f"-> {args.save}")
        return
    kept = np.load(args.load)
    crops = [kept[f"arr_{i}"] for i in range(len(kept.files) - 1)]
    if len(crops) != len(prepared.tasks):
        parser.error(f"{args.load} holds {len(crops)} crops, the photo has {len(prepared.tasks)}")
    outcomes = [CropOutcome(c, int(n), 0.0, 1) for c, n in zip(crops, kept["iterations"])]
    _, report = finish(prepared, outcomes, engine)
    faces = [{"crop": f["crop"], "psnr": f["psnr"], "budget_gain": f["budget_gain"],
              "dsr": {name: {r: v["dsr_cmua"] for r, v in _sizes(s).items()}
                      for name, s in f["surrogates"].items()},
              "distortion": {name: {r: round(v["distortion"], 4) for r, v in _sizes(s).items()}
                             for name, s in f["surrogates"].items()},
              "dsr_framed": {name: s["dsr_framed"] for name, s in f["surrogates"].items()},
              "margin": {name: s.get("margin") for name, s in f["surrogates"].items()}}
             for f in report["faces"]]
    print(json.dumps({"photo": args.photo.name, "faces": faces,
                      "seconds": {k: report["seconds"][k] for k in ("encode", "evaluate")}},
                     indent=1))


if __name__ == "__main__":
    main()
