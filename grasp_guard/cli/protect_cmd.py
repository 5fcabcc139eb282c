"""`grasp-guard protect PATH... -o OUT`: protect photos on disk, one report per image."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections import Counter
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
from grasp_guard.cli.status import ExitStatus
from grasp_guard.errors import GraspGuardError
from grasp_guard.json_report import dumps
from grasp_guard.pipeline import protect

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".mpo", ".heic", ".heif"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("protect", help="Protect face photos (files or folders).")
    parser.add_argument("paths", nargs="+", type=Path, help="Image files or folders of images.")
    parser.add_argument("-o", "--out", required=True,
                        help="Output folder; an output file when protecting one image and it "
                             "names an image file (me.protected.jpg, no trailing slash).")
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


def output_paths(images: list[tuple[Path, Path]], out: str) -> list[Path]:
    """Where each image goes: into the folder ``out``, or to the file ``out`` when one image
    is protected and ``out`` names an image file (not an existing folder, no trailing slash)."""
    target = Path(out)
    if (len(images) == 1 and not out.endswith(("/", os.sep)) and not target.is_dir()
            and target.suffix.lower() in IMAGE_SUFFIXES):
        return [target]
    return [target / relative for _, relative in images]


def refusal(images: list[tuple[Path, Path]], outputs: list[Path], out: str,
            report: Path | None) -> str | None:
    """Why the run cannot write what it would make, found before any image is protected."""
    clashes = [dst for dst, n in Counter(outputs).items() if n > 1]
    if clashes:
        sources = [str(src) for (src, _), dst in zip(images, outputs) if dst == clashes[0]]
        return f"{' and '.join(sources)} would all be written to {clashes[0]}: protect them apart"
    for folder in dict.fromkeys(dst.parent for dst in outputs):
        blocking = _file_in_the_way(folder)
        if blocking is not None:
            return f"{blocking} is a file, not a folder for the outputs"
        unwritable = _unwritable(folder)
        if unwritable is not None:
            return f"cannot write the outputs in {folder}: {unwritable}"
    if report is not None and not report.parent.is_dir():
        return f"the report's folder {report.parent} does not exist"
    return None


def _unwritable(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or in the first of its parents that exists,
    where the rest will be made), else None: tried with a file no one sees, at once gone."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _file_in_the_way(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that exists, when it is not a folder."""
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file beside ``path``: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    images = list(find_images(args.paths))
    if not images:
        print("grasp-guard: no images found", file=sys.stderr)
        return ExitStatus.ERROR
    outputs = output_paths(images, args.out)
    problem = refusal(images, outputs, args.out, args.report)
    if problem is not None:
        print(f"grasp-guard: error: {problem}", file=sys.stderr)
        return ExitStatus.USAGE
    options = options_from_args(args)
    detector = detector_from_args(args)
    engine = engine_from_args(args)
    reports: list[dict[str, Any]] = []
    failed = 0
    for (src, _), dst in zip(_progress(images), outputs):
        entry: dict[str, Any] = {"input": str(src), "output": str(dst)}
        try:
            if dst.exists() and not args.overwrite:
                raise FileExistsError(f"{dst} exists (use --overwrite)")
            out, report = protect(src.read_bytes(), options, engine, detector=detector)
            _write(dst, out)
            entry.update(report)
            print(_summary(src, report), file=sys.stderr)
        except (GraspGuardError, OSError, ValueError) as exc:
            failed += 1
            entry["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{src}: FAILED: {exc}", file=sys.stderr)
        reports.append(entry)
    if args.report:
        _write(args.report, (dumps(reports, indent=2) + "\n").encode())
    elif len(images) == 1 and "error" not in reports[0]:
        print(dumps(reports[0], indent=2))
    return ExitStatus.ERROR if failed else ExitStatus.OK


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
