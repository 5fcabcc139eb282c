"""`grasp-guard`: protect | serve | proxy | models | bench | verify | demo | policy | extension.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Errors map to exit statuses in one place.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from grasp_guard.cli.status import ExitStatus
from grasp_guard.errors import GraspGuardError

# Each subcommand, its module, and the extras it needs beyond the base install (the SDK's):
# one whose module cannot be imported is listed still, and says what to install.
COMMANDS = (
    ("protect", "protect_cmd", "engine"),
    ("verify", "verify_cmd", "engine"),
    ("serve", "serve_cmd", "engine"),
    ("proxy", "proxy_cmd", "engine,proxy"),
    ("models", "models_cmd", "engine"),
    ("bench", "bench_cmd", "engine,bench"),
    ("demo", "demo_cmd", "engine,proxy,bench"),
    ("policy", "policy_cmd", ""),
    ("extension", "extension_cmd", ""),
)

_ALL_EXTRAS = "engine,proxy,bench"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grasp-guard",
        description="Protect face photos against deepfake editors (GRASP).",
    )
    parser.add_argument("--traceback", action="store_true", help="Show the full traceback on errors.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log progress details.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, extras in COMMANDS:
        try:
            importlib.import_module(f"grasp_guard.cli.{module}").register(sub)
        except ImportError as exc:
            _register_missing(sub, name, extras, exc)
    return parser


def _register_missing(sub: argparse._SubParsersAction, name: str, extras: str,  # type: ignore[type-arg]
                      exc: ImportError) -> None:
    """``name``, whose module needs what is not installed: it says what to install."""
    needs = f"pip install 'grasp-guard[{extras}]'" if extras else "pip install grasp-guard"
    # every argument, options and --help too, is the command's: it says what to install
    command = sub.add_parser(name, help=f"(not installed: {needs})", add_help=False,
                             prefix_chars="\0")
    command.add_argument("rest", nargs="*")

    def missing(_args: argparse.Namespace) -> int:
        print(f"grasp-guard: error: `{name}` needs what this install lacks ({exc}): {needs}",
              file=sys.stderr)
        return ExitStatus.ERROR

    command.set_defaults(func=missing)


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
    except ImportError as exc:  # a module a command loads as it runs
        if args.traceback:
            raise
        print(f"grasp-guard: error: `{args.command}` needs what this install lacks ({exc}): "
              f"pip install 'grasp-guard[{_ALL_EXTRAS}]'", file=sys.stderr)
        return ExitStatus.ERROR
    except (GraspGuardError, OSError, ValueError) as exc:
        if args.traceback:
            raise
        print(f"grasp-guard: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
