"""Options shared by the engine-driving subcommands: presets, site pipeline, models, device,
face detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from grasp_sdk.options import ON_NO_FACE, PRESETS, SIZE_MODES, ProtectOptions

from grasp_guard.faces.choose import detector_named
from grasp_guard.faces.detect import FaceDetector
from grasp_guard.pipeline import Engine
from grasp_guard.sites import resolve_site


def add_site_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESETS, default="balanced", help="Optimisation budget.")
    parser.add_argument("--size-mode", choices=SIZE_MODES, default="any",
                        help="any size; max: never larger than the input; exact: the input's length.")
    parser.add_argument("--on-no-face", choices=ON_NO_FACE, default="skip",
                        help="skip: leave a photo with no face byte-identical; whole: protect it all.")
    parser.add_argument("--site", help="A policy site whose re-encoding the protection must survive.")
    parser.add_argument("--policy", type=Path, default=None,
                        help="Policy file for --site (default: $GRASP_GUARD_POLICY, else the "
                             "shipped policy).")
    parser.add_argument("--site-jpeg-quality", type=int, help="Ad-hoc: the site's JPEG quality.")
    parser.add_argument("--site-max-side", type=int, help="Ad-hoc: the site's longest side.")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="default",
                        help="Comma-separated surrogate editors (see `grasp-guard models list`); "
                             "`default`: the zoo's default set, those whose weights are cached.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N.")


def add_detector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", default="auto",
                        help="Face detector: auto (CenterFace once fetched, else the Haar "
                        "cascade), centerface, haar, or yunet (with --detector-model).")
    parser.add_argument("--detector-model", type=Path,
                        help="The detector's model file (yunet; centerface: instead of the "
                        "cached one).")


def detector_from_args(args: argparse.Namespace) -> FaceDetector | None:
    """The detector the flags name; ``None`` for the default."""
    return detector_named(args.detector, args.detector_model)


def options_from_args(args: argparse.Namespace) -> ProtectOptions:
    """ProtectOptions from the flags; ``--site`` fills what the flags leave open."""
    options = ProtectOptions(
        preset=args.preset, size_mode=args.size_mode, on_no_face=args.on_no_face,
        site=args.site, site_jpeg_quality=args.site_jpeg_quality, site_max_side=args.site_max_side,
    )
    return resolve_site(options, args.policy)


def engine_from_args(args: argparse.Namespace) -> Engine:
    return Engine.create(tuple(m.strip() for m in args.models.split(",") if m.strip()), args.device)
