"""`grasp-guard extension build [-o DIR] [--policy FILE] [--service URL]`: the browser extension."""

from __future__ import annotations

import argparse
from pathlib import Path

from grasp_sdk.policy import POLICY_ENV, load_policy

from grasp_guard.extension.build import DEFAULT_PAGES, DEFAULT_SERVICE, build_extension

DEFAULT_OUT = Path("build/extension")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``extension`` command and its actions."""
    parser = sub.add_parser("extension", help="Build the browser extension.",
                            description="Build the browser extension.")
    actions = parser.add_subparsers(dest="extension_action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="Write the unpacked extension (load it in chrome://extensions).",
        description="Write the unpacked Manifest V3 extension: browser/, the JavaScript SDK "
                    "and the compiled policy (an extension cannot load remote code, so a new "
                    "policy means a new build). Prints its ID and the cors_origins line the "
                    "service needs.")
    build.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, metavar="DIR",
                       help=f"Where to write it, replacing what is there (default {DEFAULT_OUT}).")
    build.add_argument("--policy", type=Path, default=None,
                       help=f"The policy YAML (default: ${POLICY_ENV}, else the shipped policy).")
    build.add_argument("--pages", type=Path, default=DEFAULT_PAGES,
                       help="The page hosts of each site (default browser/pages.json).")
    build.add_argument("--service", default=DEFAULT_SERVICE,
                       help=f"The service's URL until changed in the popup (default {DEFAULT_SERVICE}).")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    built = build_extension(args.output, load_policy(args.policy), pages_file=args.pages,
                            service=args.service)
    print(f"wrote the extension to {built.folder} (ID {built.extension_id})")
    print(f"  runs on: {' '.join(built.matches)}")
    if built.ignored:
        print(f"  pages of sites not in the policy, ignored: {', '.join(built.ignored)}")
    print("  load it: chrome://extensions > Developer mode > Load unpacked > that folder")
    print("  let it call the service: in service.yaml (grasp-guard serve --config FILE)\n"
          f"    cors_origins: [\"{built.origin}\"]")
    return 0
