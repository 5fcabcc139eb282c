"""`grasp-guard bench quality [--quick] [--json]`: the matched-PSNR quality benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grasp_guard.benchmarks.report import (
    RESULTS_DIR,
    RunRecord,
    attach_to_quality,
    meta,
    write_results,
)
from grasp_guard.cli.status import ExitStatus

NOTES = """\
Levels: each method's budget is tuned (secant search on a calibration subset) so that its mean
PSNR after 8-bit quantisation lands within ±0.5 dB of the level. `standard` is the published
PGD protocol (ε 0.05, a 0.01, 10 steps on [-1, 1], one attack per image and edit).
PGD's saturated ±ε sign perturbation rounds to whole 8-bit levels, so its PSNR moves in jumps
(±2/255 → 42.1 dB, ±3/255 → 38.6 dB): its level rows land at the reachable PSNR nearest the
level, which can be outside ±0.5 dB (the PSNR column is what it reached). GRASP's budget is the
PSNR itself (an L2 ball), so its rows land on the level; `budget` is L∞ ε for PGD and the RMS
of δ for the GRASP family, both on the [0, 1] scale.
`reference` is the surrogate trained in this repo (a stand-in, not a real deepfake model);
`stargan-celeba-128` and `attgan-celeba-128` run their full-size official architectures with
seeded random weights, calibrated on six held-in scikit-image samples (AttGAN's BatchNorm
statistics: with the default 0/1 its eval-mode net is constant; and each net's last conv
scaled so its edits have the samples' contrast, which alone sets a random net's fragility):
a mechanics check, not a protection claim.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="Run a benchmark and record its results.")
    bench = parser.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    quality = bench.add_parser("quality", help="Defense methods compared at matched PSNR.")
    quality.add_argument("--quick", action="store_true", help="The small plan (≤ 5 min on 2 cores).")
    quality.add_argument("--part", choices=("all", "reference", "models", "real-cyclegan", "real-reference",
                                  "real-reference-levels", "real-transfer", "real-ablations",
                                  "real-cyclegan-levels", "real-cyclegan-levels-rest",
                                  "real-cyclegan-framing"),
                         default="all",
                         help="Run one part of the full plan (two parts fit two cores side by side).")
    quality.add_argument("--only", metavar="METHOD:LEVEL,...",
                         help="Only these level rows of the part (e.g. grasp:psnr38).")
    quality.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                         help="Merge the JSON files of parts into the full table and plot.")
    quality.add_argument("--json", action="store_true",
                         help="Print the results as one JSON object on the last line of stdout.")
    quality.add_argument("--out", type=Path, default=RESULTS_DIR, help="Results folder.")
    quality.set_defaults(func=run_quality)
    register_robustness(bench)
    register_transfer(bench)
    register_fuzz(bench)


def run_quality(args: argparse.Namespace) -> int:
    from grasp_guard.benchmarks.quality import (
        PARTS,
        QUICK,
        RERUNS,
        describe,
        plot_dsr_vs_psnr,
        run_plan,
    )
    from grasp_guard.benchmarks.report import Row

    if args.merge:
        docs = [json.loads(p.read_text()) for p in args.merge]
        rows = [Row(**r) for d in docs for r in d["rows"]]
        info = meta(parts=[d["meta"] for d in docs])
        name = "quality"
        notes = NOTES
    else:
        name = "quality-quick" if args.quick else (
            "quality" if args.part == "all" else f"quality-{args.part}")
        plans = [QUICK] if args.quick else (
            list(PARTS.values()) if args.part == "all" else [{**PARTS, **RERUNS}[args.part]])
        if args.only:
            rows_named = args.only.split(",")
            plans = [p.only(rows_named) for p in plans]
            name += "-" + "-".join(r.replace(":", "-") for r in rows_named)
        # the real-face parts say which faces, surrogates and n; the older parts share NOTES
        notes = "\n\n".join(p.about for p in plans if p.about) or NOTES
        rows = []
        record = RunRecord(plan=name)

        def save(row: Row, done: list[Row]) -> None:
            print(describe(row), file=sys.stderr, flush=True)
            write_results(name, "Quality at matched PSNR", [*rows, *done], record.info(), notes,
                          args.out)

        for plan in plans:
            rows += run_plan(plan, progress=save)
        info = record.info()
    doc = write_results(name, "Quality at matched PSNR", rows, info, notes, args.out)
    if name == "quality":
        doc = attach_to_quality(args.out) or doc
        plot_dsr_vs_psnr(rows, args.out / "dsr_vs_psnr.png")
    if args.json:
        print(json.dumps(doc))
    return 0


def register_robustness(bench: argparse._SubParsersAction) -> None:
    parser = bench.add_parser("robustness", help="DSR after real JPEG / resize, with and without the site loop.")
    parser.add_argument("--n", type=int, default=20, help="Eval crops.")
    parser.add_argument("--levels", default="psnr38,psnr40", help="Comma-separated PSNR levels.")
    parser.add_argument("--crop-scales", default="1,2",
                        help="Comma-separated crop sides, in multiples of the editor's resolution.")
    parser.add_argument("--model", default="reference",
                        help="The editor (trained reference, or a zoo model with real weights).")
    parser.add_argument("--variants", default="grasp,grasp+site-jpeg80,grasp+site-jpeg75-85+resize0.5",
                        help="Comma-separated variants (GRASP without / with a site loop).")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="Results folder.")
    parser.set_defaults(func=run_robustness)


def run_robustness(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from grasp_guard.benchmarks.quality import load_bench_editor
    from grasp_guard.benchmarks.robustness import markdown, robustness_rows

    record = RunRecord()
    editor = load_bench_editor(args.model, seeded=False)
    rows = [
        row
        for scale in args.crop_scales.split(",")
        for row in robustness_rows(editor, args.n, args.levels.split(","),
                                   calib_n=min(6, args.n), crop_scale=int(scale),
                                   variants=args.variants.split(","))
    ]
    info = record.info()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "robustness" if args.model == "reference" else f"robustness-{args.model}"
    (args.out / f"{stem}.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "meta": info}, indent=2) + "\n")
    header = "\n".join(f"- {k}: `{v}`" for k, v in info.items())
    (args.out / f"{stem}.md").write_text(
        f"# Robustness to the site's processing ({editor.info.label})\n\n{header}\n\n{markdown(rows)}\n\n"
        "DSR (CMUA) of the processed protected crop against the processed clean crop, after "
        "real Pillow processing. `kept after jpeg80` = DSR after JPEG q80 / DSR before. "
        "`crop` is the side at which the face is protected and processed: the editor's own "
        "resolution (worst case for a resize) or twice it (a resize to the editor's size).\n")
    attach_to_quality(args.out)
    print(markdown(rows))
    return 0


def register_transfer(bench: argparse._SubParsersAction) -> None:
    parser = bench.add_parser("transfer", help="Leave-one-out transfer: DSR on a net the protection never saw.")
    parser.add_argument("--n", type=int, default=32, help="Real-face crops per row.")
    parser.add_argument("--levels", default="psnr38,psnr40", help="Comma-separated PSNR levels.")
    parser.add_argument("--resolution", type=int, default=128, help="Crop side in pixels.")
    parser.add_argument("--pool", default=None,
                        help="Comma-separated nets (default: every zoo net with real or trained "
                             "weights here); a net without cached weights joins seeded, as a "
                             "member only.")
    parser.add_argument("--judges", default=None,
                        help="Comma-separated held-out nets to measure (default: every net of "
                             "the pool with real or trained weights).")
    parser.add_argument("--variants", default="grasp,grasp+diversity,grasp+features",
                        help="Comma-separated methods of the quality benchmark (GRASP variants).")
    parser.add_argument("--steps", type=int, default=40, help="Iterations of every run.")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="Results folder.")
    parser.set_defaults(func=run_transfer)


def run_transfer(args: argparse.Namespace) -> int:
    from grasp_guard.benchmarks.quality import describe
    from grasp_guard.benchmarks.report import Row
    from grasp_guard.benchmarks.transfer import about, available_models, load_pool, transfer_table

    record = RunRecord()
    pool = load_pool(args.pool.split(",") if args.pool else available_models())
    notes = about(pool, args.n, args.resolution)
    title = "Transfer to editors never seen (leave-one-out)"

    def save(row: Row, done: list[Row]) -> None:
        print(describe(row), file=sys.stderr, flush=True)
        write_results("transfer", title, done, record.info(), notes, args.out)

    rows = transfer_table(pool, args.n, args.resolution, args.levels.split(","),
                          args.variants.split(","), steps=args.steps,
                          judges=args.judges.split(",") if args.judges else None, progress=save)
    write_results("transfer", title, rows, record.info(), notes, args.out)
    attach_to_quality(args.out)
    return 0


def register_fuzz(bench: argparse._SubParsersAction) -> None:
    parser = bench.add_parser(
        "fuzz", help="Fuzzed request bodies through the service's parser and decoder.")
    parser.add_argument("--count", type=int, default=10_000, help="Requests to send.")
    parser.add_argument("--seed", type=int, default=0, help="The run's seed.")
    parser.add_argument("--start", type=int, default=0,
                        help="The first case's index (each case is a function of seed and index).")
    parser.add_argument("--log", type=Path, help="Write one line per case as it is answered.")
    parser.add_argument("--append", type=Path, metavar="MARKDOWN",
                        help="Append the results section to this file (e.g. "
                             "bench/results/service.md).")
    parser.set_defaults(func=run_fuzz)


def run_fuzz(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from grasp_guard.benchmarks.fuzz_cases import FuzzCase
    from grasp_guard.benchmarks.service_fuzz import Answer, Verdict, markdown, run
    from grasp_guard.models.zoo import load_editor

    info = meta(seed=args.seed, cases=f"{args.start}..{args.start + args.count - 1}",
                niceness=os.nice(0), load_average=" ".join(f"{x:.1f}" for x in os.getloadavg()))
    log = args.log.open("w", buffering=1) if args.log else None

    def on_case(case: FuzzCase, answer: Answer, verdict: Verdict) -> None:
        if log is not None:
            log.write(f"{case.index}\t{case.kind}\t{verdict.label}\t{answer.seconds:.2f}\t"
                      f"{case.detail}\n")
        done = case.index - args.start + 1
        if done % 500 == 0:
            print(f"{done} cases", file=sys.stderr, flush=True)

    try:
        report = asyncio.run(run([load_editor("reference")], args.seed, args.count, args.start,
                                 on_case=on_case))
    finally:
        if log is not None:
            log.close()
    section = markdown(report, info)
    print(section)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            out.write("\n" + section)
    return ExitStatus.ERROR if report.problems else ExitStatus.OK
