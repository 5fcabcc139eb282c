# Scratch trace of the give-way step (runs only at 0e00746, where `give_way` exists):
#   git worktree add /tmp/gw 0e00746; cd /tmp/gw; OMP_NUM_THREADS=2 PYTHONPATH=.:sdk python <this file>
# after `bench/finish_probe.py --save /tmp/lead/selfie.npz` and `--load` (-> /tmp/lead/selfie-new.json).
# Output: give_way_trace.out. Columns printed per changed face: DSR per size, framed DSR, margin, distortion.
import json
from pathlib import Path

import numpy as np
from grasp_sdk.options import ProtectOptions

from grasp_guard import pipeline
from grasp_guard.faces.sharing import give_way
from grasp_guard.pipeline import _BUDGET_GAINS, Engine, prepare

photo = "../shared/data/faces/selfie-many-people.jpg"
prepared = prepare(Path(photo).read_bytes(), ProtectOptions(preset="balanced"))
kept = np.load("/tmp/lead/selfie.npz")
crops = [kept[f"arr_{i}"] for i in range(len(kept.files) - 1)]
new = json.loads(Path("/tmp/lead/selfie-new.json").read_text())
margins = np.array([f["margin"]["cyclegan-vintage"] for f in new["faces"]])
sp = pipeline.BudgetSpending(prepared, crops)
enc = sp.encode()
print("gains", np.round(enc.gains, 3))
np.set_printoptions(precision=3, suppress=True)
print("load\n", sp.load)
c = give_way(margins, enc.gains, sp.load, _BUDGET_GAINS)
print(c)
moved = sp.encode(enc, c)
print("moved gains", np.round(moved.gains, 3), "psnr", np.round(10*np.log10(255**2/pipeline._crop_errors(prepared, moved.finals, sp.shown)), 2))
changed = [k for k, (a, b) in enumerate(zip(enc.finals, moved.finals)) if not np.array_equal(a, b)]
print("changed", changed, flush=True)
engine = Engine.create()
judged = engine.evaluate([prepared.tasks[k].crop for k in changed], [moved.finals[k] for k in changed])
for k, f in zip(changed, judged):
    s = f["cyclegan-vintage"]
    print(k, {r: v["dsr_cmua"] for r, v in s["by_resolution"].items()}, round(s["dsr_framed"], 3), round(s["margin"], 3),
          {r: round(v["distortion"], 4) for r, v in s["by_resolution"].items()})
