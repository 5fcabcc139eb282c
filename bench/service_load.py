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

``--backend ray`` serves on Ray Serve replicas (``--replicas N``, a local cluster started by
the service). ``--compare-replicas 1,2`` runs the timed load once per replica count, in one
run, and adds their throughput ratio, the measured seconds of optimisation per face and the
floating-point work per face (counted by torch), from which faces/s per GPU and per node are
projected. Peak memory is the service's whole process tree (with Ray: the cluster too),
sampled every second.

    .venv/bin/python bench/service_load.py [--clients 8] [--seconds 60] [--preset fast]
        [--device auto] [--models NAMES] [--max-batch 8] [--queue-size 32]
        [--backend local|ray] [--replicas N] [--compare-replicas 1,2]
        [--burst 24 [--follow-retry]] [--out bench/results/service.md] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from grasp_guard.service.processes import descendants, rss_mib

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
    optimise_per_face: list[float] = field(default_factory=list)  # seconds, from reports


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


def check_result(sample: Sample, headers: object, body: bytes) -> str | None:
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
    if sample.has_face and (report.get("faces") != 1 or body == sample.data
                            or not report.get("regions", [{}])[0].get("psnr")):
        return f"{sample.name}: its face did not come back protected: {report}"
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
                problem = check_result(sample, resp_headers, body)
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
                    tally.optimise_per_face.append(report["seconds"]["optimise"]
                                                   / report["faces"])
                else:
                    tally.unchanged += 1
            elif status in (429, 503) and "Retry-After" in resp_headers:
                await asyncio.sleep(min(float(resp_headers["Retry-After"]), 1.0))
            else:
                tally.problems.append(f"{sample.name}: unexpected {status}: {body[:200]!r}")


def start_service(args: argparse.Namespace, token: str, log: Path,
                  replicas: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "grasp_guard", "serve", "--port", str(port),
               "--device", args.device, "--max-batch", str(args.max_batch)]
    if args.backend == "ray":
        command += ["--backend", "ray", "--replicas", str(replicas or args.replicas)]
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


def percentile(values: list[float], q: float) -> float:
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
                shot.problem = check_result(sample, resp_headers, body)
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
    return f"{percentile(values, 50):.2f} / {max(values):.2f}"


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


class MemoryWatch:
    """Samples, every second, the resident memory of the service and every process below it
    (with Ray: the cluster it started and the replicas), and keeps the peaks and the totals
    seen (seconds since the start, MiB), and the machine's 1-min load average with each."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_total = 0.0
        self.peak_processes = 0
        self.totals: list[tuple[float, float]] = []
        self.loads: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def every(self, seconds: float) -> str:
        """The first total sampled in each ``seconds``-long span, as ``s: MiB`` pairs."""
        shown, spans = [], set()
        for t, total in self.totals:
            if int(t // seconds) not in spans:
                spans.add(int(t // seconds))
                shown.append(f"{t:.0f}: {total:.0f}")
        return ", ".join(shown)

    def load_span(self) -> str:
        """The 1-min load average seen while sampling, ``min–max``."""
        if not self.loads:
            return "n/a"
        return f"{min(self.loads):.1f}–{max(self.loads):.1f}"

    async def _sample(self) -> None:
        start = time.monotonic()
        while True:
            pids = [self.pid, *descendants(self.pid)]
            total = sum(map(rss_mib, pids))
            self.totals.append((time.monotonic() - start, total))
            self.peak_total = max(self.peak_total, total)
            self.loads.append(os.getloadavg()[0])
            self.peak_processes = max(self.peak_processes, len(pids))
            await asyncio.sleep(1.0)


@dataclass
class LoadRun:
    """One timed load against one service."""

    replicas: int | None
    tally: Tally
    wall: float
    ready_s: float
    metrics: dict[str, float]
    front_peak: float | None
    memory: MemoryWatch
    stop_s: float
    rc: int
    load_before: float


async def load(args: argparse.Namespace, replicas: int | None = None) -> LoadRun:
    """Start a service, run ``--clients`` clients for ``--seconds``, stop it."""
    load_before = os.getloadavg()[0]
    token = secrets.token_urlsafe(24)
    process, url = start_service(args, token, Path(args.log), replicas)
    memory = MemoryWatch(process.pid)
    memory.start()
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
        front_peak = peak_rss_mib(process.pid)
    finally:
        await memory.stop()
        stop_start = time.monotonic()
        rc = stop_service(process)
        stop_s = time.monotonic() - stop_start
    return LoadRun(replicas, tally, finished - start, ready_s, metrics, front_peak, memory,
                   stop_s, rc, load_before)


def _service_flags(args: argparse.Namespace, replicas: int | None) -> str:
    flags = f"--max-batch {args.max_batch}"
    if args.queue_size is not None:
        flags += f" --queue-size {args.queue_size}"
    if args.models:
        flags += f" --models {args.models}"
    if args.backend == "ray":
        flags += f" --backend ray --replicas {replicas or args.replicas}"
    return flags


def faces_line(models: str | None) -> str:
    """What the faces and the surrogates were, for a section's header."""
    names = models or "the service's default"
    trained = " (trained here, not a real deepfake model)" if models == "reference" else ""
    return ("- faces: scikit-image's astronaut at 192 and 256 px (one face each) and a faceless "
            f"coffee photo, round-robin; n = the answers counted below; surrogates: "
            f"`{names}`{trained}")


def _machine(args: argparse.Namespace, load_before: float) -> str:
    return (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other work, "
            f"Python {platform.python_version()}; service device `{args.device}`; 1-min load "
            f"average {load_before:.1f} before the run (timings are noisy)")


def load_rows(args: argparse.Namespace, run: LoadRun) -> list[tuple[str, object]]:
    tally, metrics, wall = run.tally, run.metrics, run.wall
    answered = sum(tally.statuses.values())
    lat = tally.latencies
    mean_batch = (metrics.get("grasp_batch_size_sum", 0) / metrics["grasp_batch_size_count"]
                  if metrics.get("grasp_batch_size_count") else float("nan"))
    batches = (f"{metrics.get('grasp_batch_size_count', 0):.0f} / {mean_batch:.2f}"
               if args.backend == "local" else "in the replicas (not exported)")
    return [
        ("clients", args.clients),
        ("load window (s)", args.seconds),
        ("wall until the last answer (s)", f"{wall:.1f}"),
        ("requests answered", answered),
        ("200 protected / unchanged", f"{tally.protected} / {tally.unchanged}"),
        ("429 (queue full, or not in time)", tally.statuses.get(429, 0)),
        ("503 (unavailable / deadline)", tally.statuses.get(503, 0)),
        ("other statuses", sum(v for k, v in tally.statuses.items() if k not in (200, 429, 503))),
        ("lost or corrupted", len(tally.problems)),
        ("throughput, all 200 (images/s)", f"{len(lat) / wall:.3f}"),
        ("throughput, protected (faces/s)", f"{tally.protected / wall:.3f}"),
        ("latency p50 (s)", f"{percentile(lat, 50):.2f}"),
        ("latency p95 (s)", f"{percentile(lat, 95):.2f}"),
        ("latency max (s)", f"{max(lat):.2f}" if lat else "n/a"),
        ("optimisation per face p50 (s, its share of its batch)",
         f"{percentile(tally.optimise_per_face, 50):.2f}"),
        ("batches run / mean crops per batch", batches),
        ("crop batch sizes seen in reports", dict(sorted(tally.batch_sizes.items()))),
        ("service ready after (s)", f"{run.ready_s:.1f}"),
        ("front peak RSS (MiB, VmHWM)",
         f"{run.front_peak:.0f}" if run.front_peak is not None else "n/a"),
        ("service process tree peak RSS (MiB, summed, sampled 1/s) / processes",
         f"{run.memory.peak_total:.0f} / {run.memory.peak_processes}"),
        ("service process tree RSS every 10 s from its start (s: MiB)", run.memory.every(10)),
        ("machine's 1-min load average during the run, min–max", run.memory.load_span()),
        ("SIGTERM to exit (s) / exit status", f"{run.stop_s:.1f} / {run.rc}"),
    ]


def _table(rows: list[tuple[str, object]]) -> list[str]:
    return ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


CHECKED = ("Every answer was checked: a 200 must decode with Pillow at the input's size and type "
           "and, for a face photo, differ from the input and report its one face protected "
           "with a PSNR; a faceless input must come back byte-identical; any other answer must "
           "be 429/503 with Retry-After. Refused clients wait min(Retry-After, 1 s) and go on.")


def _command() -> str:
    return " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


async def run(args: argparse.Namespace) -> str:
    result = await load(args)
    queue = args.queue_size if args.queue_size is not None else "default"
    lines = [
        f"## {args.clients} clients, {args.seconds:g} s, queue size {queue}, backend "
        f"{args.backend}" + (f" ({args.replicas} replicas)" if args.backend == "ray" else ""),
        "",
        f"- command: `{_command()}`",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        _machine(args, result.load_before),
        (f"- service: `grasp-guard serve {_service_flags(args, None)}`, preset `{args.preset}`, "
        "token auth"),
        f"- images, round-robin per client: {', '.join(s.name for s in samples())}",
        faces_line(args.models),
        "",
        *_table(load_rows(args, result)),
        "",
        CHECKED,
    ]
    if result.tally.problems:
        lines += ["", "Problems:", *(f"- {p}" for p in result.tally.problems[:20])]
    return "\n".join(lines) + "\n"


def flops_per_face(models: str, preset: str, sample: Sample) -> tuple[float, int]:
    """Floating-point operations torch runs to protect ``sample``'s one face (optimisation
    and the surrogate evaluation), on the CPU, and the GRASP iterations that took."""
    from grasp_sdk.options import ProtectOptions
    from torch.utils.flop_counter import FlopCounterMode

    from grasp_guard.pipeline import Engine, prepare, protect_prepared

    engine = Engine.create(tuple(models.split(",")), "cpu")
    prepared = prepare(sample.data, ProtectOptions(preset=preset))
    with FlopCounterMode(display=False) as counter:
        _, report = protect_prepared(prepared, engine)
    return float(counter.get_total_flops()), int(report["faces"][0]["iterations"])


# Projection assumptions, said with the figures: an H100 SXM's dense FP32 peak (the loop runs
# in float32), sustained at 10 % to 40 % of it, 8 GPUs a node.
GPU_FP32_PEAK = 67e12
GPU_SUSTAINED = (0.10, 0.40)
GPUS_PER_NODE = 8


async def run_compare(args: argparse.Namespace) -> str:
    counts = [int(n) for n in args.compare_replicas.split(",")]
    sample = samples()[0]
    flops, iterations = flops_per_face(args.models or "default", args.preset, sample)
    runs: list[LoadRun] = []
    for n in counts:
        runs.append(await load(args, n))
        sys.stdout.write(f"{n} replicas: {dict(load_rows(args, runs[-1]))}\n")  # kept if cut
        sys.stdout.flush()
    base = runs[0].tally.protected / runs[0].wall
    per_face = percentile([t for r in runs for t in r.tally.optimise_per_face], 50)
    low, high = (GPU_FP32_PEAK * share / flops for share in GPU_SUSTAINED)
    lines = [
        (f"## Throughput with {' vs '.join(map(str, counts))} replicas (one run), "
        f"{args.clients} clients, {args.seconds:g} s each, preset {args.preset}"),
        "",
        f"- command: `{_command()}`",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        _machine(args, runs[0].load_before),
        (f"- service: `grasp-guard serve {_service_flags(args, counts[0])}` and the same with "
        f"{', '.join(f'--replicas {n}' for n in counts[1:])}, one after the other; each replica "
        "reserves 1 CPU, so torch runs 1 thread in it"),
        f"- images, round-robin per client: {', '.join(s.name for s in samples())}",
        faces_line(args.models),
        "",
        ("| replicas | faces/s | images/s (all 200) | ratio to the first | latency p50 (s) | "
        "429 / 503 / lost | tree peak RSS (MiB) | 1-min load during |"),
        "|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for run_ in runs:
        t = run_.tally
        faces_s = t.protected / run_.wall
        lines.append(
            f"| {run_.replicas} | {faces_s:.3f} | {len(t.latencies) / run_.wall:.3f} | "
            f"{faces_s / base if base else float('nan'):.2f} | {percentile(t.latencies, 50):.2f} | "
            f"{t.statuses.get(429, 0)} / {t.statuses.get(503, 0)} / {len(t.problems)} | "
            f"{run_.memory.peak_total:.0f} | {run_.memory.load_span()} |")
    lines += [
        "",
        "Per-face work and the projection:",
        "",
        (f"- measured optimisation per face, p50 over both runs: {per_face:.2f} s on one CPU "
        f"thread ({sample.name}, {iterations} GRASP iterations when counted)"),
        (f"- floating-point work per face, counted by torch's FlopCounterMode over the "
        f"optimisation and the surrogate evaluation of {sample.name} (models "
        f"`{args.models or 'default'}`, preset {args.preset}): {flops / 1e9:.1f} GFLOP; "
        f"this CPU thread ran it at {flops / per_face / 1e9:.1f} GFLOP/s"),
        (f"- projected faces/s per GPU (an H100's {GPU_FP32_PEAK / 1e12:.0f} TFLOP/s dense FP32 "
        f"peak, sustained at {GPU_SUSTAINED[0]:.0%}–{GPU_SUSTAINED[1]:.0%}): {low:,.0f}–{high:,.0f}; "
        f"per node of {GPUS_PER_NODE} GPUs: {low * GPUS_PER_NODE:,.0f}–{high * GPUS_PER_NODE:,.0f}. "
        "A projection from counted FLOPs, not a GPU measurement: a net this small is bound by "
        "kernel launches rather than FLOPs at small batches, so it holds only for large ones."),
        "",
        CHECKED,
    ]
    for run_ in runs:
        if run_.tally.problems:
            lines += ["", f"Problems with {run_.replicas} replicas:",
                      *(f"- {p}" for p in run_.tally.problems[:20])]
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
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="The service's --backend.")
    parser.add_argument("--replicas", type=int, default=2,
                        help="With --backend ray: the service's --replicas.")
    parser.add_argument("--compare-replicas", default=None, metavar="N,M",
                        help="With --backend ray: one timed load per replica count.")
    parser.add_argument("--burst", type=int, default=None,
                        help="Send this many requests at once instead of the timed load.")
    parser.add_argument("--follow-retry", action="store_true",
                        help="With --burst: refused clients retry when Retry-After says.")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="Client-side limit per request (s); past it the answer is lost.")
    add_output_args(parser, "grasp_service_load.log")
    args = parser.parse_args(argv)
    if args.compare_replicas and args.backend != "ray":
        parser.error("--compare-replicas needs --backend ray")
    text = asyncio.run(run_burst(args) if args.burst
                       else run_compare(args) if args.compare_replicas else run(args))
    record(args.out, text, args.append)
    return 0


def stop_service(process: subprocess.Popen) -> int:
    """SIGTERM the service, wait up to 120 s, then SIGKILL; its exit status (-9 if killed)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        return -9


def add_output_args(parser: argparse.ArgumentParser, log_name: str) -> None:
    """--out, --append and --log (the service's own log, ``log_name`` in the temp folder)."""
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "service.md")
    parser.add_argument("--append", action="store_true",
                        help="Add this run to --out instead of replacing the file.")
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / log_name),
                        help="Where the service's own log goes.")


def record(out: Path, text: str, append: bool) -> None:
    """Write a run's section to ``out`` (after what is there, with ``append``) and stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if append and out.exists():
        out.write_text(out.read_text() + "\n" + text)
    else:
        out.write_text(TITLE + text)
    sys.stdout.write(text)


if __name__ == "__main__":
    raise SystemExit(main())
