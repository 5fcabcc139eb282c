"""Load test of `grasp-guard serve`: N closed-loop clients on loopback for a bounded time,
or a burst of N requests sent at the same moment.

Starts the real service as a subprocess, lets ``--clients`` clients post images back to back
for ``--seconds`` (then lets the requests in flight finish), and checks every answer: a
200 must be a valid image of the input's size and type (a faceless input byte-identical),
anything else must be an explicit 429/503 with Retry-After. Records throughput, latency
percentiles, the 429/503 counts, the service's batch sizes and its peak RSS, and writes
``bench/results/service.md``.

With ``--burst N``, N clients post the small face photo once, all at the same moment, and
the answers are counted by status with their latencies: the service should answer each with
a result or an immediate 429 with Retry-After, never a timeout. ``--follow-retry`` lets
each refused client retry when its Retry-After says, until it gets a result or
``--timeout`` passes.

    .venv/bin/python bench/service_load.py [--clients 8] [--seconds 60] [--preset fast]
        [--device auto] [--models NAMES] [--max-batch 8] [--queue-size 32]
        [--burst 24 [--follow-retry]] [--out bench/results/service.md] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
TITLE = "# Service load test (`bench/service_load.py`)\n\n"


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    size: tuple[int, int]
    mime: str
    has_face: bool


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # of 200 answers, seconds
    statuses: Counter[int] = field(default_factory=Counter)
    batch_sizes: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # lost or corrupted answers
    protected: int = 0
    unchanged: int = 0
    last_done: float = 0.0


def _jpeg(rgb: np.ndarray, side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).resize((side, side), Image.Resampling.LANCZOS).save(buf, "JPEG",
                                                                              quality=90)
    return buf.getvalue()


def samples() -> list[Sample]:
    """Two face JPEGs (different crop sizes) and a faceless one."""
    face = data.astronaut()
    coffee = np.asarray(Image.fromarray(data.coffee()).resize((200, 150)))
    buf = io.BytesIO()
    Image.fromarray(coffee).save(buf, "JPEG", quality=90)
    return [
        Sample("astronaut-192.jpg", _jpeg(face, 192), (192, 192), "image/jpeg", True),
        Sample("astronaut-256.jpg", _jpeg(face, 256), (256, 256), "image/jpeg", True),
        Sample("coffee-200x150.jpg", buf.getvalue(), (200, 150), "image/jpeg", False),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MiB; None where /proc has no such line."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _check(sample: Sample, headers: object, body: bytes) -> str | None:
    """What is wrong with a 200 answer, or None."""
    hdrs = dict(headers)  # type: ignore[call-overload]
    try:
        report = json.loads(hdrs["X-Grasp-Report"])
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            size = image.size
    except (OSError, ValueError, KeyError, SyntaxError) as exc:  # Pillow's decode failures
        return f"{sample.name}: {type(exc).__name__}: {exc}"
    if size != sample.size or hdrs.get("Content-Type") != sample.mime:
        return f"{sample.name}: got {size} {hdrs.get('Content-Type')}"
    if sample.has_face != bool(report.get("protected")):
        return f"{sample.name}: protected={report.get('protected')}"
    if not sample.has_face and body != sample.data:
        return f"{sample.name}: a faceless image came back changed"
    return None


async def client(i: int, url: str, token: str, preset: str, pool: list[Sample],
                 end: float, tally: Tally, timeout_s: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = i
        while time.monotonic() < end:
            sample = pool[n % len(pool)]
            n += 1
            start = time.monotonic()
            try:
                async with session.post(f"{url}/v1/protect", data=sample.data,
                                        params={"preset": preset},
                                        headers={**headers, "Content-Type": sample.mime}) as resp:
                    body = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                tally.problems.append(f"{sample.name}: lost: {type(exc).__name__}: {exc}")
                continue
            tally.statuses[status] += 1
            if status == 200:
                problem = _check(sample, resp_headers, body)
                if problem is not None:
                    tally.problems.append(problem)
                    continue
                tally.latencies.append(time.monotonic() - start)
                tally.last_done = time.monotonic()
                report = json.loads(resp_headers["X-Grasp-Report"])
                if report["protected"]:
                    tally.protected += 1
                    for region in report.get("regions", []):
                        tally.batch_sizes[region["batch_size"]] += 1
                else:
                    tally.unchanged += 1
            elif status in (429, 503) and "Retry-After" in resp_headers:
                await asyncio.sleep(min(float(resp_headers["Retry-After"]), 1.0))
            else:
                tally.problems.append(f"{sample.name}: unexpected {status}: {body[:200]!r}")


def start_service(args: argparse.Namespace, token: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "grasp_guard", "serve", "--port", str(port),
               "--device", args.device, "--max-batch", str(args.max_batch)]
    if args.queue_size is not None:
        command += ["--queue-size", str(args.queue_size)]
    if args.models is not None:
        command += ["--models", args.models]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, "GRASP_GUARD_TOKEN": token})
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(url: str, token: str, process: subprocess.Popen[bytes]) -> float:
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the service exited with {process.returncode}")
            try:
                async with session.get(f"{url}/readyz",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    if resp.status == 200:
                        return time.monotonic() - start
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def scrape(url: str, token: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics",
                           headers={"Authorization": f"Bearer {token}"}) as resp:
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Shot:
    """One burst client's request: its first answer, and its result when it followed retries."""

    first_status: int | None = None  # None: lost (no answer within --timeout)
    first_seconds: float = 0.0
    retry_after: list[float] = field(default_factory=list)
    attempts: int = 0
    result_seconds: float | None = None  # until a 200, retries included
    problem: str | None = None


async def burst_client(url: str, token: str, preset: str, sample: Sample, go: asyncio.Event,
                       follow: bool, timeout_s: float) -> Shot:
    """Wait for ``go``, post ``sample`` once (and again as Retry-After says, if ``follow``)."""
    shot = Shot()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": sample.mime}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        await go.wait()
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            shot.attempts += 1
            sent = time.monotonic()
            try:
                async with session.post(f"{url}/v1/protect", data=sample.data,
                                        params={"preset": preset}, headers=headers) as resp:
                    body = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                shot.problem = f"lost: {type(exc).__name__}: {exc}"
                return shot
            if shot.first_status is None:
                shot.first_status, shot.first_seconds = status, time.monotonic() - sent
            if status == 200:
                shot.problem = _check(sample, resp_headers, body)
                shot.result_seconds = time.monotonic() - start
                return shot
            if status not in (429, 503) or "Retry-After" not in resp_headers:
                shot.problem = f"{status} without a retry hint: {body[:200]!r}"
                return shot
            shot.retry_after.append(float(resp_headers["Retry-After"]))
            if not follow:
                return shot
            await asyncio.sleep(shot.retry_after[-1])
    return shot


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{_pct(values, 50):.2f} / {max(values):.2f}"


async def run_burst(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    token = secrets.token_urlsafe(24)
    process, url = start_service(args, token, Path(args.log))
    try:
        ready_s = await wait_ready(url, token, process)
        sample = samples()[0]
        go = asyncio.Event()
        clients = [asyncio.create_task(burst_client(url, token, args.preset, sample, go,
                                                    args.follow_retry, args.timeout))
                   for _ in range(args.burst)]
        await asyncio.sleep(0.5)  # every client has its session open
        start = time.monotonic()
        go.set()
        shots = await asyncio.gather(*clients)
        wall = time.monotonic() - start
        metrics = await scrape(url, token)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
    first = Counter(s.first_status for s in shots)
    by_status = {status: [s.first_seconds for s in shots if s.first_status == status]
                 for status in sorted(k for k in first if k is not None)}
    retry_hints = [h for s in shots for h in s.retry_after[:1]]
    admitted = metrics.get("grasp_admitted_total", 0)

    def refused(reason: str) -> float:
        return metrics.get(f'grasp_refused_total{{reason="{reason}"}}', 0)

    rows: list[tuple[str, object]] = [
        ("requests sent at once", args.burst),
        ("first answers by status", dict(sorted((k, v) for k, v in first.items()
                                                if k is not None))),
        *((f"{status}: latency p50 / max (s)", _spread(seconds))
          for status, seconds in by_status.items()),
        ("neither a result nor a refusal with Retry-After (lost, corrupted, 504, ...)",
         sum(s.problem is not None for s in shots)),
        ("first Retry-After p50 / max (s)", _spread(retry_hints)),
        ("service: admitted / refused (deadline) / refused (queue full)",
         f"{admitted:.0f} / {refused('deadline'):.0f} / {refused('queue_full'):.0f}"),
        ("service: batches run / crops optimised",
         f"{metrics.get('grasp_batch_size_count', 0):.0f} / "
         + f"{metrics.get('grasp_batch_size_sum', 0):.0f}"),
        ("service: mean optimisation batch (s)",
         f"{metrics['grasp_optimise_seconds_sum'] / metrics['grasp_optimise_seconds_count']:.1f}"
         if metrics.get("grasp_optimise_seconds_count") else "none finished"),
        ("wall until the last answer (s)", f"{wall:.1f}"),
        ("service ready after (s)", f"{ready_s:.1f}"),
    ]
    if args.follow_retry:
        results = [s.result_seconds for s in shots if s.result_seconds is not None]
        rows += [
            ("results after following Retry-After", f"{len(results)} of {args.burst}"),
            ("time to result p50 / max (s)", _spread(results)),
            ("attempts per client p50 / max", _spread([float(s.attempts) for s in shots])),
        ]
    models = args.models or "the default set"
    lines = [
        f"## Burst of {args.burst} requests, preset {args.preset}, models: {models}",
        "",
        f"- command: `{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
         f"{platform.python_version()}; service device `{args.device}`; 1-min load "
         f"average {load_before:.1f} before the run (other work shares the CPUs: timings "
         "are noisy)"),
        f"- service: `grasp-guard serve --max-batch {args.max_batch}"
        + (f" --queue-size {args.queue_size}" if args.queue_size is not None else "")
        + (f" --models {args.models}" if args.models else "")
        + f"` (other settings its defaults), token auth; every client posts {sample.name}",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    problems = [s.problem for s in shots if s.problem is not None]
    if problems:
        lines += ["", "Problems:", *(f"- {p}" for p in problems[:20])]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    token = secrets.token_urlsafe(24)
    log = Path(args.log)
    process, url = start_service(args, token, log)
    try:
        ready_s = await wait_ready(url, token, process)
        pool = samples()
        tally = Tally()
        start = time.monotonic()
        end = start + args.seconds
        await asyncio.gather(*(client(i, url, token, args.preset, pool, end, tally,
                                      args.timeout) for i in range(args.clients)))
        finished = time.monotonic()
        metrics = await scrape(url, token)
        rss_before_stop = peak_rss_mib(process.pid)
    finally:
        stop_start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            rc = process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            rc = -9
        stop_s = time.monotonic() - stop_start
    wall = finished - start
    answered = sum(tally.statuses.values())
    lat = tally.latencies
    mean_batch = (metrics.get("grasp_batch_size_sum", 0) / metrics["grasp_batch_size_count"]
                  if metrics.get("grasp_batch_size_count") else float("nan"))
    rows = [
        ("clients", args.clients),
        ("load window (s)", args.seconds),
        ("wall until the last answer (s)", f"{wall:.1f}"),
        ("requests answered", answered),
        ("200 protected / unchanged", f"{tally.protected} / {tally.unchanged}"),
        ("429 (queue full)", tally.statuses.get(429, 0)),
        ("503 (overloaded / deadline)", tally.statuses.get(503, 0)),
        ("other statuses", sum(v for k, v in tally.statuses.items() if k not in (200, 429, 503))),
        ("lost or corrupted", len(tally.problems)),
        ("throughput, all 200 (images/s)", f"{len(lat) / wall:.3f}"),
        ("throughput, protected (faces/s)", f"{tally.protected / wall:.3f}"),
        ("latency p50 (s)", f"{_pct(lat, 50):.2f}"),
        ("latency p95 (s)", f"{_pct(lat, 95):.2f}"),
        ("latency max (s)", f"{max(lat):.2f}" if lat else "n/a"),
        ("batches run / mean crops per batch",
         f"{metrics.get('grasp_batch_size_count', 0):.0f} / {mean_batch:.2f}"),
        ("crop batch sizes seen in reports", dict(sorted(tally.batch_sizes.items()))),
        ("service ready after (s)", f"{ready_s:.1f}"),
        ("service peak RSS (MiB, VmHWM)",
         f"{rss_before_stop:.0f}" if rss_before_stop is not None else "n/a"),
        ("SIGTERM to exit (s) / exit status", f"{stop_s:.1f} / {rc}"),
    ]
    queue = args.queue_size if args.queue_size is not None else "default"
    lines = [
        f"## {args.clients} clients, {args.seconds:g} s, queue size {queue}",
        "",
        f"- command: `{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
         f"{platform.python_version()}; service device `{args.device}`; 1-min load "
         f"average {load_before:.1f} before the run (other work shares the CPUs)"),
        f"- service: `grasp-guard serve --max-batch {args.max_batch}"
        + (f" --queue-size {args.queue_size}" if args.queue_size is not None else "")
        + f"`, preset `{args.preset}`, reference surrogate, token auth",
        f"- images, round-robin per client: {', '.join(s.name for s in samples())}",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
        ("Every answer was checked: a 200 must decode with Pillow at the input's size and "
         "type, a faceless input must come back byte-identical, and any other answer must "
         "be 429/503 with Retry-After."),
    ]
    if tally.problems:
        lines += ["", "Problems:", *(f"- {p}" for p in tally.problems[:20])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients.")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="How long clients start new requests.")
    parser.add_argument("--preset", default="fast", help="Protection preset of every request.")
    parser.add_argument("--device", default="auto", help="The service's --device.")
    parser.add_argument("--max-batch", type=int, default=8, help="The service's --max-batch.")
    parser.add_argument("--queue-size", type=int, default=None,
                        help="The service's --queue-size (default: its own).")
    parser.add_argument("--models", default=None,
                        help="The service's --models, comma-separated (default: its own).")
    parser.add_argument("--burst", type=int, default=None,
                        help="Send this many requests at once instead of the timed load.")
    parser.add_argument("--follow-retry", action="store_true",
                        help="With --burst: refused clients retry when Retry-After says.")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="Client-side limit per request (s); past it the answer is lost.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "service.md")
    parser.add_argument("--append", action="store_true",
                        help="Add this run to --out instead of replacing the file.")
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "grasp_service_load.log"),
                        help="Where the service's own log goes.")
    args = parser.parse_args(argv)
    text = asyncio.run(run_burst(args) if args.burst else run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.exists():
        args.out.write_text(args.out.read_text() + "\n" + text)
    else:
        args.out.write_text(TITLE + text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
