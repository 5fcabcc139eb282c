"""How bfloat16 autocast changes the real CycleGAN's passes: time of one forward and backward
per size, and how far the input gradient of the loop's log objective turns on real face crops.

    .venv/bin/python bench/precision_probe.py [--sizes 128,256,512] [--n 3] [--side 256]

Prints JSON lines. The cosine between the float32 and bfloat16 gradients is set beside the
float32 gradient's own cosine with itself one 8-bit level of noise away (how rough the loss is
there), at a uniform δ of about 40 dB.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.models.zoo import load_editor


def _autocast(on: bool) -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on)


def pass_seconds(editor: torch.nn.Module, size: int, bf16: bool, repeats: int = 2) -> float:
    """Best wall time of one forward and backward on a (1, 3, size, size) input."""
    x = torch.rand(1, 3, size, size)
    c = editor.conditions()[:1]
    best = float("inf")
    for _ in range(repeats):
        d = torch.zeros_like(x, requires_grad=True)
        start = time.perf_counter()
        with _autocast(bf16):
            out = editor(x + d, c)
        out.float().square().mean().backward()
        best = min(best, time.perf_counter() - start)
    return best


def input_gradient(editor: torch.nn.Module, x: torch.Tensor, delta: torch.Tensor,
                   bf16: bool) -> torch.Tensor:
    """∇δ of Σ log MSE(G(x + δ), G(x)), both edits in the same number format: (N, 3·H·W)."""
    c = editor.conditions()[:1].expand(len(x), -1)
    with torch.no_grad(), _autocast(bf16):
        clean = editor(x, c).float()
    d = delta.clone().requires_grad_(True)
    with _autocast(bf16):
        out = editor((x + d).clamp(0, 1), c)
    (out.float() - clean).square().flatten(1).mean(1).log().sum().backward()
    assert d.grad is not None
    return d.grad.flatten(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--n", type=int, default=3, help="real face crops for the gradients")
    parser.add_argument("--side", type=int, default=256, help="their side in pixels")
    args = parser.parse_args()
    editor = load_editor("cyclegan-vintage").eval().requires_grad_(False)
    for size in map(int, args.sizes.split(",")):
        print(json.dumps({"size": size, "threads": torch.get_num_threads(),
                          "float32_s": round(pass_seconds(editor, size, False), 2),
                          "bfloat16_s": round(pass_seconds(editor, size, True), 2)}), flush=True)
    x = eval_crops(args.n, args.side)
    gen = torch.Generator().manual_seed(0)
    delta = (torch.rand(x.shape, generator=gen) - 0.5) * 0.035  # RMS ≈ 0.01: about 40 dB
    jitter = (torch.rand(x.shape, generator=gen) - 0.5) * 2 / 255
    full = input_gradient(editor, x, delta, False)
    half = input_gradient(editor, x, delta, True)
    nearby = input_gradient(editor, x, delta + jitter, False)
    print(json.dumps({"side": args.side, "n": args.n,
                      "cos_float32_bfloat16": [round(v, 3) for v in F.cosine_similarity(full, half).tolist()],
                      "cos_float32_one_level_away": [round(v, 3) for v in F.cosine_similarity(full, nearby).tolist()]}))


if __name__ == "__main__":
    main()
