"""`grasp-guard verify ORIGINAL RECEIVED [--json]`: is the site's copy still protected?"""

from __future__ import annotations

import argparse
from pathlib import Path

from grasp_guard.cli.common import (
    add_detector_args,
    add_engine_args,
    detector_from_args,
    engine_from_args,
)
from grasp_guard.json_report import dumps


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("verify", help="Check that a downloaded copy still disrupts editors.")
    parser.add_argument("original", type=Path, help="The photo as you had it (before protection).")
    parser.add_argument("received", type=Path, help="The copy downloaded back from the site.")
    parser.add_argument("--json", action="store_true",
                        help="Print the result as one JSON object on the last line of stdout.")
    add_detector_args(parser)
    add_engine_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from grasp_guard.verify import verify

    detector = detector_from_args(args)
    result = verify(args.original.read_bytes(), args.received.read_bytes(), engine_from_args(args),
                    detector)
    if args.json:
        print(dumps(result))
        return 0
    print(f"verdict: {result['verdict']}  (DSR CMUA {result['dsr_cmua']:.2f}, "
          f"Ruiz {result['dsr_ruiz']:.2f}; with the attacker's own framing "
          f"{result['dsr_framed']:.2f}; received vs original PSNR {result['psnr']:.2f} dB)")
    for i, face in enumerate(result["faces"]):
        print(f"  face {i} at {face['box']}: {face['verdict']}, DSR {face['dsr_cmua']:.2f} "
              f"(framed {face['dsr_framed']:.2f}), PSNR {face['psnr']:.2f} dB")
        for name, s in face["surrogates"].items():
            print(f"    {name}: DSR CMUA {s['dsr_cmua']:.2f}, Ruiz {s['dsr_ruiz']:.2f}, "
                  f"framed {s['dsr_framed']:.2f}, distortion {s['distortion']:.4f}, "
                  f"margin {s['margin']:.2f} (weakest edit / threshold)")
    print("surrogates: " + "; ".join(result["surrogates"]))
    return 0
