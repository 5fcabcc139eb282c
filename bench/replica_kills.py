"""Replica kills under load: SIGKILL a working engine replica of `grasp-guard serve --backend
ray`, again and again, while SDK clients protect photos through the service.

Starts the service (a local Ray cluster, ``--replicas`` CPU replicas), lets ``--clients``
clients protect the bench's photos back to back through ``GraspClient`` (its retries and
Retry-After on), and ``--kills`` times picks a replica that is working (it used half a CPU
over the last half second), SIGKILLs it, and waits until Ray has a replica running in its
place before the next kill. Every HTTP answer the clients get is recorded (status, whether a
429/503 carried Retry-After, whether a body came back short), every result the SDK returns is
checked like the load bench checks a 200, and every SDK call that gave up is counted with why.

    .venv/bin/python bench/replica_kills.py [--kills 20] [--clients 6] [--replicas 2]
        [--preset fast] [--models reference] [--out bench/results/service.md] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from grasp_sdk import GraspClient, ProtectOptions
from grasp_sdk.errors import GraspSDKError
from service_load import (
    MemoryWatch,
    Sample,
    add_output_args,
    check_result,
    percentile,
    record,
    samples,
    scrape,
    start_service,
    stop_service,
    wait_ready,
)

from grasp_guard.service.processes import cpu_seconds
from grasp_guard.service.ray_backend import replica_pids


@dataclass
class Drill:
    attempts: Counter[int] = field(default_factory=Counter)  # HTTP answers by status
    refusals_without_retry_after: int = 0
    short_bodies: list[str] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)  # protected / unchanged
    gave_up: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # results that failed their check
    retried: int = 0  # results that needed more than one attempt
    restarts: list[float] = field(default_factory=list)  # kill → a replica running again (s)
    kill_times: list[float] = field(default_factory=list)


def traced_session(drill: Drill, timeout_s: float) -> aiohttp.ClientSession:
    """A session that records every answer's status and Retry-After."""
    trace = aiohttp.TraceConfig()

    async def on_end(session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        status = params.response.status
        drill.attempts[status] += 1
        if status in (429, 503) and "Retry-After" not in params.response.headers:
            drill.refusals_without_retry_after += 1

    trace.on_request_end.append(on_end)
    return aiohttp.ClientSession(trace_configs=[trace],
                                 timeout=aiohttp.ClientTimeout(total=timeout_s))


async def client(i: int, url: str, token: str, args: argparse.Namespace, pool: list[Sample],
                 stop: asyncio.Event, drill: Drill) -> None:
    async with traced_session(drill, args.timeout) as session:
        sdk = GraspClient(url, token=token, session=session, total_timeout=args.timeout,
                          max_retries=args.retries, max_retry_after=10.0)
        n = i
        while not stop.is_set():
            sample = pool[n % len(pool)]
            n += 1
            before = sum(drill.attempts.values())
            try:
                result = await sdk.protect(sample.data, ProtectOptions(preset=args.preset),
                                           content_type=sample.mime)
            except aiohttp.ClientPayloadError as exc:
                drill.short_bodies.append(f"{sample.name}: {exc}")
                continue
            except (GraspSDKError, aiohttp.ClientError, TimeoutError) as exc:
                drill.gave_up.append(f"{sample.name}: {type(exc).__name__}: {exc}")
                continue
            headers = {"X-Grasp-Report": json.dumps(result.report),
                       "Content-Type": result.content_type}
            problem = check_result(sample, headers, result.data)
            if problem is not None:
                drill.problems.append(problem)
                continue
            drill.results["protected" if result.report["protected"] else "unchanged"] += 1
            drill.retried += sum(drill.attempts.values()) - before > 1


async def busy_replica(root: int) -> int:
    """A replica using at least half a CPU over half a second."""
    while True:
        before = {}
        for pid in replica_pids(root):
            try:
                before[pid] = cpu_seconds(pid)
            except OSError:
                continue
        await asyncio.sleep(0.5)
        for pid, seconds in before.items():
            try:
                if cpu_seconds(pid) - seconds >= 0.25:
                    return pid
            except OSError:
                continue


async def running_again(url: str, token: str, root: int, victim: int, replicas: int) -> None:
    """Wait until the victim is gone and ``replicas`` replicas run (as /readyz sees them)."""
    async with aiohttp.ClientSession() as session:
        while True:
            pids = replica_pids(root)
            if victim not in pids and len(pids) == replicas:
                async with session.get(f"{url}/readyz",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    body = await resp.json()
                if body.get("replicas", {}).get("RUNNING") == replicas:
                    return
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    token = secrets.token_urlsafe(24)
    service_args = SimpleNamespace(device="cpu", max_batch=args.max_batch, queue_size=None,
                                   models=args.models, backend="ray", replicas=args.replicas)
    process, url = start_service(service_args, token, Path(args.log))  # type: ignore[arg-type]
    memory = MemoryWatch(process.pid)
    memory.start()
    drill = Drill()
    try:
        ready_s = await wait_ready(url, token, process)
        stop = asyncio.Event()
        pool = samples()
        start = time.monotonic()
        clients = [asyncio.create_task(client(i, url, token, args, pool, stop, drill))
                   for i in range(args.clients)]
        await asyncio.sleep(args.settle)
        for _ in range(args.kills):
            victim = await busy_replica(process.pid)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            drill.kill_times.append(killed - start)
            await running_again(url, token, process.pid, victim, args.replicas)
            drill.restarts.append(time.monotonic() - killed)
            await asyncio.sleep(args.settle)
        stop.set()
        await asyncio.gather(*clients)
        wall = time.monotonic() - start
        metrics = await scrape(url, token)
    finally:
        await memory.stop()
        rc = stop_service(process)
    cut = metrics.get('grasp_errors_total{kind="unavailable"}', 0)
    late = metrics.get('grasp_errors_total{kind="deadline_exceeded"}', 0)
    succeeded = sum(drill.results.values())
    rows: list[tuple[str, object]] = [
        ("replicas / clients", f"{args.replicas} / {args.clients}"),
        ("replicas SIGKILLed while working", len(drill.restarts)),
        ("kill → a replica running in its place, p50 / max (s)",
         f"{percentile(drill.restarts, 50):.1f} / {max(drill.restarts, default=float('nan')):.1f}"),
        ("wall (s)", f"{wall:.0f}"),
        ("SDK calls: checked results (protected / unchanged)",
         f"{succeeded} ({drill.results['protected']} / {drill.results['unchanged']})"),
        ("SDK calls that needed a retry and then succeeded", drill.retried),
        ("SDK calls that gave up (after retries)", len(drill.gave_up)),
        ("results that failed their check (corrupted, unprotected face)", len(drill.problems)),
        ("answers cut short (a partial body)", len(drill.short_bodies)),
        ("HTTP answers by status", dict(sorted(drill.attempts.items()))),
        ("429/503 answers without Retry-After", drill.refusals_without_retry_after),
        (("503 `unavailable` (a request under a killed replica) / `deadline_exceeded` (503/504), "
         "from the service's metrics"), f"{cut:.0f} / {late:.0f}"),
        ("service process tree peak RSS (MiB, summed, sampled 1/s) / processes",
         f"{memory.peak_total:.0f} / {memory.peak_processes}"),
        ("service ready after (s) / exit status after SIGTERM", f"{ready_s:.1f} / {rc}"),
    ]
    lines = [
        f"## {args.kills} replica kills under load (SIGKILL of a working replica)",
        "",
        f"- command: `{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        (f"- machine: {os.cpu_count()} CPUs shared with other work; 1-min load average "
         f"{load_before:.1f} before the run (timings are noisy)"),
        (f"- service: `grasp-guard serve --backend ray --replicas {args.replicas} --device cpu "
         f"--models {args.models} --max-batch {args.max_batch}` (a local cluster it starts), "
         f"token auth; clients: `GraspClient` (max_retries {args.retries}, Retry-After honoured "
         f"up to 10 s, total {args.timeout:g} s a call), preset `{args.preset}`, the load "
         f"bench's images round-robin: {', '.join(s.name for s in samples())}"),
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    for title, items in (("Gave up", drill.gave_up), ("Failed their check", drill.problems),
                         ("Cut short", drill.short_bodies)):
        if items:
            lines += ["", f"{title}:", *(f"- {p}" for p in items[:20])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="Replicas to SIGKILL, one by one.")
    parser.add_argument("--clients", type=int, default=6, help="Concurrent SDK clients.")
    parser.add_argument("--replicas", type=int, default=2, help="The service's --replicas.")
    parser.add_argument("--preset", default="fast", help="Protection preset of every request.")
    parser.add_argument("--models", default="reference", help="The service's --models.")
    parser.add_argument("--max-batch", type=int, default=8, help="The service's --max-batch.")
    parser.add_argument("--retries", type=int, default=8, help="The SDK client's max_retries.")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="The SDK client's total time per call (s).")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="Seconds of load before the first kill and after each restart.")
    add_output_args(parser, "grasp_kills.log")
    args = parser.parse_args(argv)
    record(args.out, text=asyncio.run(run(args)), append=args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
