"""Replica kills under load: SIGKILL a working engine replica of `grasp-guard serve --backend
ray`, again and again, while SDK clients protect photos through the service.

Starts the service (a local Ray cluster, ``--replicas`` CPU replicas), lets ``--clients``
clients protect the bench's photos back to back through ``GraspClient`` (its retries and
Retry-After on), and ``--kills`` times picks a replica that is working (it used half a CPU
over the last half second), SIGKILLs it, and waits until Ray has a replica running in its
place before the next kill. Every HTTP answer the clients get is recorded (status, whether a
429/503 carried Retry-After and a JSON body, whether a body came back short), every result the
SDK returns is checked like the load bench checks a 200, every SDK call that gave up is counted
with why, and every call cut by a kill (answered 503) is followed to its end: a result after
the SDK's retries, or a give-up.

Beside them, ``--proxy-clients`` clients upload photos through mitmdump with the GRASP Guard
addon (``on_failure: pass``) to a local site that judges each upload where it lands:
protected whole, or byte-identical to what was sent, never half-rewritten
(:mod:`proxied_uploads`).

    .venv/bin/python bench/replica_kills.py [--kills 20] [--clients 6] [--replicas 2]
        [--proxy-clients 2] [--preset fast] [--models reference]
        [--out bench/results/service.md] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import sys
import tempfile
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
from proxied_uploads import Landed, Site, guarded_proxy, serve_site, upload_client
from service_load import (
    MemoryWatch,
    Sample,
    add_output_args,
    check_result,
    faces_line,
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
    refusals_not_json: int = 0
    short_bodies: list[str] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)  # protected / unchanged
    gave_up: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # results that failed their check
    retried: int = 0  # results that needed more than one attempt
    cut_then_result: int = 0  # calls answered 503 at least once that ended in a result
    cut_then_gave_up: int = 0  # calls answered 503 at least once that gave up
    restarts: list[float] = field(default_factory=list)  # kill → a replica running again (s)
    kill_times: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer a client got: its status, Retry-After and, for a refusal, the start
    of its error message."""

    status: int
    retry_after: str | None
    why: str

    def __str__(self) -> str:
        hint = f", Retry-After {self.retry_after}" if self.retry_after is not None else ""
        return f"{self.status}{hint}{': ' + self.why if self.why else ''}"


def traced_session(drill: Drill, answers: list[Answer],
                   timeout_s: float) -> aiohttp.ClientSession:
    """A session that records every answer (counted in ``drill``, and listed in order in
    ``answers``: one client's own), its Retry-After and whether a refusal is JSON."""
    trace = aiohttp.TraceConfig()

    async def on_end(session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        response = params.response
        status = response.status
        drill.attempts[status] += 1
        why = ""
        if status in (429, 503):
            drill.refusals_without_retry_after += "Retry-After" not in response.headers
            try:  # read here, the body stays cached for the SDK
                why = str((await response.json())["error"]["message"])[:48].rstrip(": ")
            except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
                drill.refusals_not_json += 1
        answers.append(Answer(status, response.headers.get("Retry-After"), why))

    trace.on_request_end.append(on_end)
    return aiohttp.ClientSession(trace_configs=[trace],
                                 timeout=aiohttp.ClientTimeout(total=timeout_s))


async def client(i: int, url: str, token: str, args: argparse.Namespace, pool: list[Sample],
                 stop: asyncio.Event, drill: Drill) -> None:
    answers: list[Answer] = []  # this client's, in order
    async with traced_session(drill, answers, args.timeout) as session:
        sdk = GraspClient(url, token=token, session=session, total_timeout=args.timeout,
                          max_retries=args.retries, max_retry_after=args.max_retry_after)
        n = i
        while not stop.is_set():
            sample = pool[n % len(pool)]
            n += 1
            before, started = len(answers), time.monotonic()
            try:
                result = await sdk.protect(sample.data, ProtectOptions(preset=args.preset),
                                           content_type=sample.mime)
            except aiohttp.ClientPayloadError as exc:
                drill.short_bodies.append(f"{sample.name}: {exc}")
                continue
            except (GraspSDKError, aiohttp.ClientError, TimeoutError) as exc:
                story = "; ".join(map(str, answers[before:]))
                drill.gave_up.append(f"{sample.name}, after {time.monotonic() - started:.0f} s: "
                                     f"{type(exc).__name__}: {exc}. Its answers: {story}")
                drill.cut_then_gave_up += any(a.status == 503 for a in answers[before:])
                continue
            headers = {"X-Grasp-Report": json.dumps(result.report),
                       "Content-Type": result.content_type}
            problem = check_result(sample, headers, result.data)
            if problem is not None:
                drill.problems.append(problem)
                continue
            drill.results["protected" if result.report["protected"] else "unchanged"] += 1
            drill.retried += len(answers) - before > 1
            drill.cut_then_result += any(a.status == 503 for a in answers[before:])


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


async def kill_replicas(args: argparse.Namespace, url: str, token: str, root: int,
                        drill: Drill, start: float) -> None:
    """After ``--settle`` s of load, ``--kills`` times: SIGKILL a working replica, wait for
    its replacement to run, let the load settle again."""
    await asyncio.sleep(args.settle)
    for _ in range(args.kills):
        victim = await busy_replica(root)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        drill.kill_times.append(killed - start)
        await running_again(url, token, root, victim, args.replicas)
        drill.restarts.append(time.monotonic() - killed)
        await asyncio.sleep(args.settle)


async def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    token = secrets.token_urlsafe(24)
    service_args = SimpleNamespace(device="cpu", max_batch=args.max_batch, queue_size=None,
                                   models=args.models, backend="ray", replicas=args.replicas)
    process, url = start_service(service_args, token, Path(args.log))  # type: ignore[arg-type]
    memory = MemoryWatch(process.pid)
    memory.start()
    drill = Drill()
    landed = Landed()
    try:
        ready_s = await wait_ready(url, token, process)
        stop = asyncio.Event()
        pool = samples()
        site = Site(landed)
        async with contextlib.AsyncExitStack() as stack:
            site_url = await stack.enter_async_context(serve_site(site))
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            proxy = stack.enter_context(guarded_proxy(folder, url, token, args.timeout))
            start = time.monotonic()
            numbers = itertools.count()
            clients = [asyncio.create_task(client(i, url, token, args, pool, stop, drill))
                       for i in range(args.clients)]
            clients += [asyncio.create_task(upload_client(proxy, site_url, site, numbers, stop,
                                                          args.timeout + 60))
                        for _ in range(args.proxy_clients)]
            await kill_replicas(args, url, token, process.pid, drill, start)
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
        (("SDK calls cut by a kill (answered 503) that the SDK's retries turned into a result "
         "/ that gave up"), f"{drill.cut_then_result} / {drill.cut_then_gave_up}"),
        ("SDK calls that gave up (after retries)", len(drill.gave_up)),
        ("results that failed their check (corrupted, unprotected face)", len(drill.problems)),
        ("answers cut short (a partial body)", len(drill.short_bodies)),
        ("HTTP answers by status", dict(sorted(drill.attempts.items()))),
        ("429/503 answers without Retry-After / without a JSON body",
         f"{drill.refusals_without_retry_after} / {drill.refusals_not_json}"),
        (("503 `unavailable` (a request under a killed replica) / `deadline_exceeded` (503/504), "
         "from the service's metrics"), f"{cut:.0f} / {late:.0f}"),
        (("proxy uploads landed at the site: protected / byte-identical (forwarded "
         "unprotected)"), f"{landed.verdicts['protected']} / {landed.verdicts['original']}"),
        ("proxy uploads landed half-rewritten", len(landed.half_rewritten)),
        (("503 `unavailable` answered to the proxy's addon (the service's count less the SDK "
          "clients' 503s)"), f"{cut - drill.attempts[503]:.0f}"),
        ("proxy answers by status / uploads lost (no answer)",
         f"{dict(sorted(landed.answers.items()))} / {len(landed.lost)}"),
        ("service process tree peak RSS (MiB, summed, sampled 1/s) / processes",
         f"{memory.peak_total:.0f} / {memory.peak_processes}"),
        ("service ready after (s) / exit status after SIGTERM", f"{ready_s:.1f} / {rc}"),
        ("machine's 1-min load average during the run, min–max", memory.load_span()),
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
         f"up to {args.max_retry_after:g} s, total {args.timeout:g} s a call), preset "
         f"`{args.preset}`, the load bench's images round-robin: "
         f"{', '.join(s.name for s in samples())}"),
        (f"- proxy: {args.proxy_clients} clients upload a 220 x 200 face JPEG (each one "
         "different) and a caption, multipart, through `mitmdump` with the GRASP Guard addon "
         f"(policy `on_failure: pass`, preset `fast`, grasp_timeout {args.timeout:g} s) to a "
         "local site that judges each upload as it lands"),
        faces_line(args.models),
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    for title, items in (("Gave up", drill.gave_up), ("Failed their check", drill.problems),
                         ("Cut short", drill.short_bodies),
                         ("Landed half-rewritten", landed.half_rewritten),
                         ("Proxy uploads lost", landed.lost)):
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
    parser.add_argument("--proxy-clients", type=int, default=2,
                        help="Clients uploading through mitmdump with the addon.")
    parser.add_argument("--retries", type=int, default=8, help="The SDK client's max_retries.")
    parser.add_argument("--max-retry-after", type=float, default=30.0,
                        help="The longest Retry-After the SDK client honours (s); its default.")
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
