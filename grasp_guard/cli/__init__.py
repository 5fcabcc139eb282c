"""`grasp-guard`: protect | serve | proxy | models | bench | verify | demo.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Errors map to exit statuses in one place.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from enum import IntEnum

from grasp_guard.errors import GraspGuardError

SUBCOMMANDS = ("protect", "serve", "proxy", "models", "bench", "verify", "demo")


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # an operation failed (e.g. some images could not be protected)
    USAGE = 2  # bad command line (argparse's own status)
    INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grasp-guard",
        description="Protect face photos against deepfake editors (GRASP).",
    )
    parser.add_argument("--traceback", action="store_true", help="Show the full traceback on errors.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log progress details.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"grasp_guard.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"grasp_guard.cli.{name}_cmd":
                raise
            continue
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
