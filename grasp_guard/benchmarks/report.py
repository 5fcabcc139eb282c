"""Benchmark provenance and output: markdown table, JSON file, one JSON line on stdout."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path("bench") / "results"


@dataclass
class Row:
    """One benchmark row; DSR values are fractions in [0, 1]."""

    method: str
    model: str
    level: str
    n: int
    psnr: float
    ssim: float
    dsr_cmua: float
    dsr_ruiz: float
    distortion: float
    iterations: float
    sec_per_face: float
    budget: float | None = None  # on the [0, 1] scale: L∞ ε (PGD) or RMS of δ (PSNR budget)
    note: str = ""
    # CMUA DSR with the attacker's crop a few pixels over or 7% off ours (rows from before
    # it was measured: None)
    dsr_framed: float | None = None


def meta(argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Command line, machine and git revision, for the top of every result file."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               check=False).stdout
        rev += "+dirty" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "command": " ".join(["grasp-guard", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": rev,
        "machine": f"{platform.machine()} {platform.processor() or ''} ".strip()
        + f", {torch.get_num_threads()} torch threads, device {device}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        **extra,
    }


class RunRecord:
    """What a result file says of its run: command, revision and date fixed when the run
    starts (a long run's files name the code that measured them), seconds since then."""

    def __init__(self, argv: Sequence[str] | None = None, **extra: Any) -> None:
        self._meta = meta(argv, **extra)
        self._start = time.perf_counter()

    def info(self) -> dict[str, Any]:
        return {**self._meta, "seconds": round(time.perf_counter() - self._start, 1)}


def markdown_table(rows: Sequence[Row]) -> str:
    head = ("method", "model", "level", "n", "PSNR", "SSIM", "DSR CMUA", "DSR Ruiz",
            "DSR framed", "distortion", "iters", "s/face", "budget", "note")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        budget = f"{r.budget * 255:.2f}/255" if r.budget is not None else ""
        framed = f"{r.dsr_framed:.2f}" if r.dsr_framed is not None else "–"
        lines.append(
            f"| {r.method} | {r.model} | {r.level} | {r.n} | {r.psnr:.2f} | {r.ssim:.4f} | "
            f"{r.dsr_cmua:.2f} | {r.dsr_ruiz:.2f} | {framed} | {r.distortion:.4f} | {r.iterations:.1f} | "
            f"{r.sec_per_face:.2f} | {budget} | {r.note} |"
        )
    return "\n".join(lines)


def write_results(name: str, title: str, rows: Sequence[Row], info: dict[str, Any],
                  notes: str = "", out_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """Write ``name.md`` and ``name.json``; return the JSON document. ``notes`` (which faces,
    which surrogates, n) go at the top, under the command, before the table they describe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"rows": [asdict(r) for r in rows], "meta": info}
    (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    header = "\n".join(f"- {k}: `{v}`" for k, v in info.items() if not isinstance(v, (dict, list)))
    parts = [f"# {title}", header, notes, markdown_table(rows)]
    (out_dir / f"{name}.md").write_text("\n\n".join(p for p in parts if p) + "\n")
    return doc


ATTACHED = ("robustness", "transfer")


def attach_to_quality(out_dir: Path = RESULTS_DIR) -> dict[str, Any] | None:
    """Copy each of ``robustness.json`` and ``transfer.json`` that exists into
    ``quality.json`` under its name; the updated doc.

    The quality JSON is the one file that holds every benchmark row; any benchmark may run
    first, so each attaches after writing. ``None`` when the quality file or all the others
    are missing.
    """
    quality = out_dir / "quality.json"
    found = [name for name in ATTACHED if (out_dir / f"{name}.json").exists()]
    if not (quality.exists() and found):
        return None
    doc = json.loads(quality.read_text())
    for name in found:
        doc[name] = json.loads((out_dir / f"{name}.json").read_text())
    quality.write_text(json.dumps(doc, indent=2) + "\n")
    return doc
