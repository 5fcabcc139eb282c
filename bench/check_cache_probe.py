"""What caching the clean side of a site copy that draws nothing saves: one real face through
the balanced loop and a site JPEG at a known block grid, with the cache and without it (the
same pipeline behind a plain callable, which the loop cannot know draws nothing).

    .venv/bin/python bench/check_cache_probe.py [--photo PATH] [--face 0] [--steps 20]

Prints one JSON line: seconds of each run and whether their images are identical.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from grasp_guard.defense.config import config_for
from grasp_guard.defense.grasp import Transform, grasp
from grasp_guard.defense.transforms import SiteSpec, build_site_pipeline
from grasp_guard.faces.detect import HaarDetector
from grasp_guard.faces.regions import extract_crops, feather_mask, plan_regions, to_tensor
from grasp_guard.models.zoo import load_editor

SHARED_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "img46.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=SHARED_PHOTO)
    parser.add_argument("--face", type=int, default=0, help="Which detected face (0-based).")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quality", type=int, default=90, help="The site's JPEG quality.")
    args = parser.parse_args()
    rgb = np.asarray(Image.open(args.photo).convert("RGB"))
    region = plan_regions(rgb.shape, HaarDetector().detect(rgb))[args.face]
    x = to_tensor(extract_crops(rgb, [region]))
    weight = torch.from_numpy(feather_mask(region))[None, None]
    grid = torch.tensor([[region.crop.y % 16, region.crop.x % 16, 0]])  # an upright JPEG
    config = config_for("balanced", steps=args.steps, early_stop=False)
    editor = load_editor("cyclegan-vintage")
    spec = SiteSpec(jpeg_quality=(args.quality, args.quality))

    def run(transform: Transform) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        result = grasp(x, [editor], config, transform=transform, weight=weight, grid=grid)
        return time.perf_counter() - start, result.images

    cached_s, cached = run(build_site_pipeline(spec, max(rgb.shape[:2]), seed=config.seed))
    opaque = build_site_pipeline(spec, max(rgb.shape[:2]), seed=config.seed)
    uncached_s, uncached = run(lambda b, grid=None: opaque(b, grid))
    print(json.dumps({"photo": args.photo.name, "crop": region.crop.side, "steps": args.steps,
                      "threads": torch.get_num_threads(), "cached_s": round(cached_s, 1),
                      "uncached_s": round(uncached_s, 1),
                      "identical": bool(torch.equal(cached, uncached))}), flush=True)


if __name__ == "__main__":
    main()
