"""Train the reference surrogate: a small StarGAN-architecture editor, the way GANs are trained.

Paired pix2pix-style training of the five synthesis edits of ``reference_edits`` on crops
of scikit-image's sample images: LSGAN loss from a label-conditioned PatchGAN plus
``l1_weight`` · L1 to the target edit. The adversarial term is what makes the editor
produce texture rather than a smooth average, and therefore as fragile to input
perturbations as real editors. Deterministic from ``--seed`` on a given thread count.

    python -m grasp_guard.models.train_reference --steps 6000 --out grasp_guard/models/weights
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.models.reference import REFERENCE_CONFIG, build_reference_generator
from grasp_guard.models.reference_edits import (
    EDIT_NAMES,
    HOLDOUT_IMAGES,
    TRAIN_IMAGES,
    apply_edits,
    load_sample,
)

logger = logging.getLogger(__name__)


def random_crops(names: tuple[str, ...], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random square crops (side 0.6–3× ``size``, flipped at random): (N, size, size, 3)."""
    images = [load_sample(n) for n in names]
    crops = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        img = images[rng.integers(len(images))]
        h, w = img.shape[:2]
        side = int(min(rng.uniform(0.6, 3.0) * size, h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
        crops[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return crops


def make_dataset(names: tuple[str, ...], count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources (N, 3, S, S) and their five edits (N, 5, 3, S, S), uint8."""
    crops = random_crops(names, count, size, np.random.default_rng(seed))
    edits = np.stack([apply_edits(c) for c in crops])
    return (
        torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(edits).permute(0, 1, 4, 2, 3).contiguous(),
    )


class PatchDiscriminator(nn.Module):
    """A small label-conditioned PatchGAN over (source, edit, tiled label)."""

    def __init__(self, c_dim: int, dim: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.main = nn.Sequential(
            sn(nn.Conv2d(6 + c_dim, dim, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(dim, dim * 2, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(dim * 2, dim * 4, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(dim * 4, 1, 3, 1, 1)),
        )

    def forward(self, src: torch.Tensor, out: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        tiled = c.view(c.size(0), -1, 1, 1).expand(-1, -1, src.size(2), src.size(3))
        return self.main(torch.cat([src, out, tiled], dim=1))


def to_unit(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 127.5 - 1.0


def heldout_l1(g: nn.Module, src: torch.Tensor, edits: torch.Tensor) -> tuple[float, float]:
    """Mean L1 ([-1, 1] scale) of the editor and of the identity map on held-out crops."""
    c_dim = edits.shape[1]
    g_err, id_err = 0.0, 0.0
    with torch.no_grad():
        x = to_unit(src)
        for k in range(c_dim):
            c = F.one_hot(torch.full((len(x),), k), c_dim).float()
            y = to_unit(edits[:, k])
            g_err += (g(x, c) - y).abs().mean().item()
            id_err += (x - y).abs().mean().item()
    return g_err / c_dim, id_err / c_dim


def train(steps: int, seed: int, out: Path, batch: int = 16, l1_weight: float = 10.0,
          dataset_size: int = 6000, log_every: int = 200,
          snapshot_every: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    cfg = REFERENCE_CONFIG
    src, edits = make_dataset(TRAIN_IMAGES, dataset_size, cfg["resolution"], seed)
    val_src, val_edits = make_dataset(HOLDOUT_IMAGES, 256, cfg["resolution"], seed + 1)
    g = build_reference_generator()
    d = PatchDiscriminator(len(EDIT_NAMES))
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    start = time.monotonic()
    for step in range(1, steps + 1):
        idx = torch.randint(len(src), (batch,), generator=gen)
        k = torch.randint(len(EDIT_NAMES), (batch,), generator=gen)
        x = to_unit(src[idx])
        y = to_unit(edits[idx, k])
        c = F.one_hot(k, len(EDIT_NAMES)).float()
        fake = g(x, c)
        # LSGAN: D pushes real → 1, fake → 0; G pushes fake → 1.
        d_loss = ((d(x, y, c) - 1) ** 2).mean() + (d(x, fake.detach(), c) ** 2).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        adv = ((d(x, fake, c) - 1) ** 2).mean()
        l1 = (fake - y).abs().mean()
        g_loss = adv + l1_weight * l1
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % log_every == 0 or step == steps:
            val, ident = heldout_l1(g, val_src, val_edits)
            logger.info("step %d  d %.3f  adv %.3f  l1 %.3f  held-out l1 %.4f (identity %.4f)  %.0fs",
                        step, d_loss.item(), adv.item(), l1.item(), val, ident, time.monotonic() - start)
            save(g, out)
        if snapshot_every and step % snapshot_every == 0:
            save(g, out, f"reference-step{step}.pt")
    val, ident = heldout_l1(g, val_src, val_edits)
    stats = {"steps": steps, "seed": seed, "heldout_l1": val, "identity_l1": ident,
             "train_seconds": time.monotonic() - start, "torch_threads": torch.get_num_threads()}
    (out / "reference.json").write_text(json.dumps({**cfg, **stats}, indent=2) + "\n")
    return stats


def save(g: nn.Module, out: Path, name: str = "reference.pt") -> None:
    """Atomic write of the generator's state_dict to ``out / name``."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{name}.tmp"
    torch.save(g.state_dict(), tmp)
    tmp.replace(out / name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--l1-weight", type=float, default=10.0,
                        help="weight of the L1 term against the adversarial one")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="also keep reference-step<N>.pt every N steps (to follow fragility)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    print(json.dumps(train(args.steps, args.seed, args.out, l1_weight=args.l1_weight,
                           snapshot_every=args.snapshot_every)))


if __name__ == "__main__":
    main()
