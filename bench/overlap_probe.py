"""Where a group photo's protection goes: faces whose crops overlap, optimised apart or in turn.

    .venv/bin/python bench/overlap_probe.py [--photo PATH] [--steps 25] [--in-turn]
    .venv/bin/python bench/overlap_probe.py --census [--faces DIR]

`protect` batches a photo's faces by crop size, and only faces of one size are optimised
jointly; a face whose crop overlaps a face of another size is optimised without the
perturbation that face pastes into its crop. This runs the pipeline's own crops (the default
detector, `balanced` capped at ``--steps``) and prints, per face, the mean distortion of the
real CycleGAN's edit at each size and the framed DSR: of its own protected crop, of the photo
with only its own crop pasted, and of the photo with every crop pasted (what leaves).

``--in-turn`` probes a design that is not in the product: the groups are optimised one after
the other, smallest crops first, each seeing what the groups before it pasted into its crop
(a fixed offset added to the loop's view of x', patched into ``_Run._seen`` here); only the
every-crop-pasted row is printed.

``--census`` optimises nothing: for each photo in ``--faces`` with several faces, the crop
sides the default detector's faces get and which faces overlap a face of another crop size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from grasp_sdk.options import ProtectOptions

from grasp_guard.defense import grasp as loop
from grasp_guard.faces.regions import extract_crops, paste
from grasp_guard.pipeline import Engine, PreparedImage, _overlaps, prepare

_CONTEXT: dict[str, torch.Tensor | None] = {"offset": None}


def _with_context(seen: Any) -> Any:
    def wrapped(self: Any, x: torch.Tensor, delta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out, offset = seen(self, x, delta, idx), _CONTEXT["offset"]
        return out if offset is None else (out + offset[idx]).clamp(0.0, 1.0)
    return wrapped


def _pasted(p: PreparedImage, crops: list[np.ndarray]) -> list[np.ndarray]:
    """Every region's crop re-cut from the photo with ``crops`` pasted (an original crop
    pastes nothing)."""
    return extract_crops(paste(p.image.upright, p.regions, crops, weighted=False), p.regions)


def _optimise(p: PreparedImage, engine: Engine, steps: int, in_turn: bool) -> list[np.ndarray]:
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, task in enumerate(p.tasks):
        groups.setdefault(task.group_key, []).append(i)
    originals = [t.crop for t in p.tasks]
    protected = list(originals)
    for idx in sorted(groups.values(), key=lambda g: p.tasks[g[0]].crop.shape[0]):
        if in_turn:
            now = _pasted(p, protected)
            _CONTEXT["offset"] = torch.from_numpy(np.stack(
                [(now[i].astype(np.float32) - originals[i]) / 255.0 for i in idx])).permute(0, 3, 1, 2)
        for i, outcome in zip(idx, engine.optimise([p.tasks[i] for i in idx], max_steps=steps)):
            protected[i] = outcome.protected
    _CONTEXT["offset"] = None
    return protected


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
    parser.add_argument("--in-turn", action="store_true")
    parser.add_argument("--census", action="store_true")
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces"))
    args = parser.parse_args()
    if args.census:
        _census(args.faces)
        return
    if args.in_turn:
        loop._Run._seen = _with_context(loop._Run._seen)  # type: ignore[method-assign]
    p = prepare(args.photo.read_bytes(), ProtectOptions())
    engine = Engine.create()
    start = time.time()
    protected = _optimise(p, engine, args.steps, args.in_turn)
    print(f"optimised in {time.time() - start:.0f} s", flush=True)
    originals = [t.crop for t in p.tasks]
    rows = {"with neighbours": _distortions(engine, originals, _pasted(p, protected))}
    if not args.in_turn:
        alone = [_pasted(p, [c if j == i else o for j, (c, o) in enumerate(zip(protected, originals))])[i]
                 for i in range(len(protected))]
        rows = {"own": _distortions(engine, originals, protected),
                "pasted alone": _distortions(engine, originals, alone), **rows}
    for i, region in enumerate(p.regions):
        print(i, region.crop.side, " | ".join(f"{k} {v[i]}" for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
