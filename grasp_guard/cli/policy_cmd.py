"""`grasp-guard policy compile [--policy PATH] [-o OUT.json]`: the policy as JSON for the JS SDK."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grasp_sdk.policy import POLICY_ENV, load_policy
from grasp_sdk.policy_json import dumps


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``policy`` command and its actions."""
    parser = sub.add_parser("policy", help="Work with the per-site upload policy.",
                            description="Work with the per-site upload policy.")
    actions = parser.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    compile_ = actions.add_parser(
        "compile", help="Validate the policy and write it as JSON (read by the JavaScript SDK).")
    compile_.add_argument("--policy", type=Path, default=None,
                          help=f"The policy YAML (default: ${POLICY_ENV}, else the shipped policy).")
    compile_.add_argument("-o", "--output", type=Path, default=None, metavar="OUT.json",
                          help="Where to write the JSON (default: standard output).")
    compile_.set_defaults(func=_compile)


def _compile(args: argparse.Namespace) -> int:
    text = dumps(load_policy(args.policy))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
