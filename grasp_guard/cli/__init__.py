"""`grasp-guard`: protect | serve | proxy | models | bench | verify | demo | policy | extension.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Errors map to exit statuses in one place.
"""

from __future__ import annotations

import argparse
import logging
import sys

from grasp_guard.cli import (
    bench_cmd,
    demo_cmd,
    extension_cmd,
    models_cmd,
    policy_cmd,
    protect_cmd,
    proxy_cmd,
    serve_cmd,
    verify_cmd,
)
from grasp_guard.cli.status import ExitStatus
from grasp_guard.errors import GraspGuardError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grasp-guard",
        description="Protect face photos against deepfake editors (GRASP).",
    )
    parser.add_argument("--traceback", action="store_true", help="Show the full traceback on errors.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log progress details.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (protect_cmd, verify_cmd, serve_cmd, proxy_cmd, models_cmd, bench_cmd, demo_cmd,
                   policy_cmd, extension_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except (GraspGuardError, OSError, ValueError) as exc:
        if args.traceback:
            raise
        print(f"grasp-guard: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
