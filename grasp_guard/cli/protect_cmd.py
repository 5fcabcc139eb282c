"""`grasp-guard protect PATH... -o OUT`: protect photos on disk, one report per image."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grasp_guard.cli.common import (
    add_detector_args,
    add_engine_args,
    add_site_args,
    detector_from_args,
    engine_from_args,
    options_from_args,
)
from grasp_guard.errors import GraspGuardError
from grasp_guard.json_report import dumps
from grasp_guard.pipeline import protect

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".mpo", ".heic", ".heif"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("protect", help="Protect face photos (files or folders).")
    parser.add_argument("paths", nargs="+", type=Path, help="Image files or folders of images.")
    parser.add_argument("-o", "--out", type=Path, required=True,
                        help="Output folder (or output file when protecting one image).")
    parser.add_argument("--report", type=Path, help="Write the per-image reports as JSON here.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Allow writing over existing files, inputs included.")
    add_detector_args(parser)
    add_site_args(parser)
    add_engine_args(parser)
    parser.set_defaults(func=run)


def find_images(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(image, path relative to its root) for files given and images inside folders."""
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    yield p, p.relative_to(root)
        else:
            yield root, Path(root.name)


def output_path(out: Path, relative: Path, single: bool) -> Path:
    if single and not out.is_dir() and out.suffix:
        return out
    return out / relative


def run(args: argparse.Namespace) -> int:
    images = list(find_images(args.paths))
    if not images:
        print("grasp-guard: no images found", file=sys.stderr)
        return 1
    options = options_from_args(args)
    detector = detector_from_args(args)
    engine = engine_from_args(args)
    single = len(images) == 1
    reports: list[dict[str, Any]] = []
    failed = 0
    for src, relative in _progress(images):
        dst = output_path(args.out, relative, single)
        entry: dict[str, Any] = {"input": str(src), "output": str(dst)}
        try:
            if dst.exists() and not args.overwrite:
                raise FileExistsError(f"{dst} exists (use --overwrite)")
            data = src.read_bytes()
            out, report = protect(data, options, engine, detector=detector)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".part")
            tmp.write_bytes(out)
            tmp.replace(dst)  # never a partial output file
            entry.update(report)
            print(_summary(src, report), file=sys.stderr)
        except (GraspGuardError, OSError, ValueError) as exc:
            failed += 1
            entry["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{src}: FAILED: {exc}", file=sys.stderr)
        reports.append(entry)
    if args.report:
        args.report.write_text(dumps(reports, indent=2) + "\n")
    elif single and "error" not in reports[0]:
        print(dumps(reports[0], indent=2))
    return 1 if failed else 0


def _progress(items: list[tuple[Path, Path]]) -> Any:
    if len(items) < 3:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="image", file=sys.stderr)


def _summary(src: Path, report: dict[str, Any]) -> str:
    if not report.get("protected"):
        return f"{src}: unchanged ({report.get('reason', 'not protected')})"
    return (f"{src}: {len(report['faces'])} face(s), PSNR {report['psnr']:.2f} dB, "
            f"SSIM {report['ssim']:.4f}, DSR {report['dsr_cmua']:.2f} "
            f"(attacker's framing {report['dsr_framed']:.2f}), "
            f"{report['seconds'].get('total', 0):.1f} s, size x{report['size_ratio']:.3f}")
