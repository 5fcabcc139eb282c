"""What the GRASP Guard addon costs: the proxy with it against plain mitmdump.

Two measurements, both over plain HTTP on loopback to a local site (its own process):

1. Traffic the policy does not match (the shipped ``grasp_sdk/policy.yaml``): ``--sequential``
   small POSTs one after another (latency) and ``--concurrent`` POSTs from ``--clients``
   clients at once (throughput), through mitmdump with the addon and through two plain
   mitmdumps with the same flags (the second one is the control: the difference between
   the two plain ones is the noise). They run side by side and are measured in rounds of
   rotating order, so that drifting load on the machine falls on all alike. The addon's
   own time per request is also timed in process.
2. Protected uploads: ``--uploads`` face photos (each a different JPEG, so the addon's cache
   never answers) posted to a path the policy matches, through the addon with the real
   service (reference surrogate, preset ``fast``) and through plain mitmdump; the added
   latency is the difference, upload by upload.

    .venv/bin/python bench/proxy_overhead.py [--sequential 300] [--concurrent 600]
        [--clients 16] [--rounds 12] [--uploads 10] [--out bench/results/proxy.md]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import mitmproxy.version
import piexif
from aiohttp import web
from grasp_sdk.policy import shipped_policy_path
from PIL import Image
from proxied_uploads import UPLOAD_PATH
from proxied_uploads import upload_policy as policy_for_uploads
from skimage import data

from proxy_addon.launch import (
    AddonOptions,
    child,
    free_port,
    mitmdump_command,
    service_command,
    wait_listening,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_POLICY = shipped_policy_path()
SMALL_BODY = os.urandom(1024)
LABELS = {"plain": "plain mitmdump", "control": "plain mitmdump (control)",
          "guarded": "with the addon"}
MAX_BUFFER = 32 * 2**20


# --- the site --------------------------------------------------------------------------------

async def _answer(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"length": len(body)})


def serve_site(port: int) -> None:
    """The local site: every POST is read whole and answered with its length."""
    app = web.Application(client_max_size=2**30)
    app.router.add_post("/{tail:.*}", _answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the clients -------------------------------------------------------------------------------

@dataclass
class Sample:
    """One proxy's measurements, accumulated over the rounds."""

    latencies: list[float]
    concurrent_requests: int = 0
    concurrent_seconds: float = 0.0
    round_p50: list[float] = field(default_factory=list)
    round_throughput: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.concurrent_requests / self.concurrent_seconds


async def sequential(proxy: str, url: str, n: int) -> list[float]:
    """``n`` POSTs back to back on one keep-alive connection; their latencies in seconds."""
    latencies = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(n):
            start = time.perf_counter()
            async with session.post(url, data=SMALL_BODY, proxy=proxy) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            latencies.append(time.perf_counter() - start)
    return latencies


async def concurrent(proxy: str, url: str, n: int, clients: int) -> float:
    """``n`` POSTs from ``clients`` concurrent clients; the wall time in seconds."""
    queue = iter(range(n))

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            async with session.post(url, data=SMALL_BODY, proxy=proxy) as resp:
                await resp.read()
                assert resp.status == 200, resp.status

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - start


async def upload(proxy: str, url: str, photo: bytes) -> float:
    """One multipart photo upload; its latency in seconds."""
    form = aiohttp.FormData()
    form.add_field("photo", photo, filename="me.jpg", content_type="image/jpeg")
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        async with session.post(url, data=form, proxy=proxy) as resp:
            await resp.read()
            assert resp.status == 200, (resp.status, await resp.text())
        return time.perf_counter() - start


def photos(n: int) -> list[bytes]:
    """``n`` different JPEGs of the astronaut's face (one-pixel shifts), with EXIF."""
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"GraspBench"}})
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(data.astronaut()[20 + i: 240 + i, 140:340]).save(
            buf, "JPEG", quality=90, exif=exif)
        out.append(buf.getvalue())
    return out


def hook_cost(n: int = 5000) -> float:
    """The addon's own time per unmatched request (µs): its two hooks, in process."""
    from mitmproxy import http
    from mitmproxy.test import taddons, tflow

    from proxy_addon.addon import GraspGuard

    async def timed() -> float:
        addon = GraspGuard()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, grasp_policy=str(SHIPPED_POLICY))
            flows = [tflow.tflow(req=http.Request.make(
                "POST", f"http://127.0.0.1:8000/api/echo?n={i}", SMALL_BODY)) for i in range(n)]
            start = time.perf_counter()
            for flow in flows:
                addon.requestheaders(flow)
                await addon.request(flow)
            return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(timed())


# --- the run -----------------------------------------------------------------------------------

def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


async def measure_unmatched(proxies: dict[str, str], url: str, args: argparse.Namespace
                            ) -> dict[str, Sample]:
    samples = {name: Sample([]) for name in proxies}
    per_round_seq = max(1, args.sequential // args.rounds)
    per_round_conc = max(args.clients, args.concurrent // args.rounds)
    for name, proxy in proxies.items():  # warm both: connections, first-flow imports
        await sequential(proxy, url, 20)
    names = list(proxies)
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        order = names[shift:] + names[:shift]
        order = order if round_ % 2 == 0 else order[::-1]
        for name in order:
            latencies = await sequential(proxies[name], url, per_round_seq)
            samples[name].latencies += latencies
            samples[name].round_p50.append(statistics.median(latencies))
        for name in order:
            seconds = await concurrent(proxies[name], url, per_round_conc, args.clients)
            samples[name].concurrent_requests += per_round_conc
            samples[name].concurrent_seconds += seconds
            samples[name].round_throughput.append(per_round_conc / seconds)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return samples


async def measure_uploads(proxies: dict[str, str], url: str, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in proxies}
    for i, photo in enumerate(photos(n)):
        for name, proxy in proxies.items():
            times[name].append(await upload(proxy, url, photo))
        print(f"upload {i + 1}/{n}: guarded {times['guarded'][-1]:.2f} s, plain "
              f"{times['plain'][-1]:.3f} s", file=sys.stderr, flush=True)
    return times


def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        logs = stack.enter_context((folder / "processes.log").open("wb"))
        quiet: dict[str, Any] = {"stdout": logs, "stderr": subprocess.STDOUT}
        site_port = free_port()
        site = stack.enter_context(child([sys.executable, __file__, "--site", str(site_port)],
                                         **quiet))
        wait_listening("127.0.0.1", site_port, site)
        service_url = f"http://127.0.0.1:{free_port()}"
        service = stack.enter_context(child(service_command(
            "127.0.0.1", int(service_url.rsplit(":", 1)[1])), **quiet))
        upload_policy = folder / "upload-policy.yaml"
        upload_policy.write_text(policy_for_uploads("block"))

        def proxy(policy: Path | None) -> str:
            port = free_port()
            addon = None if policy is None else AddonOptions(policy, (service_url,), 900.0,
                                                             MAX_BUFFER)
            argv = mitmdump_command(host="127.0.0.1", port=port, confdir=folder / "mitm",
                                    allow_hosts=[r"^upload\.example\.com:\d+$"],
                                    stream_large_bodies=MAX_BUFFER, addon=addon)
            proc = stack.enter_context(child(argv, **quiet))
            wait_listening("127.0.0.1", port, proc)
            return f"http://127.0.0.1:{port}"

        wait_ready(service_url, service, 600)  # idle, not warming up, while we measure
        unmatched_proxies = {"plain": proxy(None), "control": proxy(None),
                             "guarded": proxy(SHIPPED_POLICY)}
        base = f"http://127.0.0.1:{site_port}"
        unmatched = asyncio.run(measure_unmatched(unmatched_proxies, base + "/api/echo", args))
        upload_proxies = {"guarded": proxy(upload_policy), "plain": unmatched_proxies["plain"]}
        uploads = asyncio.run(measure_uploads(upload_proxies, base + UPLOAD_PATH, args.uploads))
    return report(args, unmatched, uploads, hook_cost(), load_before)


def report(args: argparse.Namespace, unmatched: dict[str, Sample],
           uploads: dict[str, list[float]], hook_us: float, load_before: float) -> str:
    plain = unmatched["plain"]
    rows = []
    for name, sample in unmatched.items():
        lat = sample.latencies
        rows.append((LABELS[name], statistics.median(lat) * 1e3, pct(lat, 95) * 1e3,
                     statistics.fmean(lat) * 1e3, sample.throughput))
    base = rows[0]
    table = "\n".join(
        f"| {name} | {p50:.3f} ({p50 / base[1]:.3f}) | {p95:.2f} ({p95 / base[2]:.3f}) | "
        f"{mean:.3f} ({mean / base[3]:.3f}) | {thr:.0f} ({thr / base[4]:.3f}) |"
        for name, p50, p95, mean, thr in rows)
    control = unmatched["control"]
    base_p50 = [(a + b) / 2 for a, b in zip(plain.round_p50, control.round_p50, strict=True)]
    base_thr = [(a + b) / 2 for a, b in zip(plain.round_throughput, control.round_throughput,
                                            strict=True)]
    paired = {name: (_paired(sample.round_p50, base_p50),
                     _paired(sample.round_throughput, base_thr))
              for name, sample in unmatched.items()}
    paired_rows = "\n".join(f"| {LABELS[name]} | {lat:.3f} | {thr:.3f} |"
                             for name, (lat, thr) in paired.items())
    lat_ratio, thr_ratio = paired["guarded"]
    within = lat_ratio <= 1.05 and thr_ratio >= 0.95
    per_request_us = 1e6 / plain.throughput
    added = [g - p for g, p in zip(uploads["guarded"], uploads["plain"], strict=True)]
    cmd = " ".join(["bench/proxy_overhead.py", *sys.argv[1:]])
    return f"""# Proxy overhead (`bench/proxy_overhead.py`)

- command: `{cmd}`
- date: {datetime.now(UTC).isoformat(timespec="seconds")}
- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, \
mitmproxy {mitmproxy.version.VERSION}; 1-min load average {load_before:.1f} before the run \
(other work shares the CPUs, so single numbers jitter: the second plain mitmdump is the \
control that shows by how much)
- every proxy: `mitmdump --listen-host 127.0.0.1 --set flow_detail=0 --set \
stream_large_bodies={MAX_BUFFER} --set allow_hosts=...`; "guarded" adds `-s \
proxy_addon/mitm_entry.py` and the `grasp_*` options

## Traffic the policy does not match

{len(plain.latencies)} sequential 1 KiB POSTs (one keep-alive client) and \
{plain.concurrent_requests} concurrent ones ({args.clients} clients) per proxy, plain HTTP to a \
local site, the shipped `grasp_sdk/policy.yaml` (11 enabled sites, none matching), in \
{args.rounds} rounds of rotating order. In brackets: the ratio to the first plain mitmdump.

| proxy | latency p50 (ms) | latency p95 (ms) | latency mean (ms) | throughput (req/s) |
|---|---|---|---|---|
{table}

Paired by round (each round measures every proxy within seconds of the others, so the \
machine's load drifts little between them): the median over the rounds of each proxy's \
ratio to the mean of the two plain mitmdumps in that round. How far the two plain ones \
fall from 1.000 is what this machine's noise alone does.

| proxy | p50 latency ratio | throughput ratio |
|---|---|---|
{paired_rows}

Target, the addon within 5% of plain mitmdump (its paired p50 latency and throughput \
ratios): **{"met" if within else "not met"}** in this run.

The addon's own work per unmatched request, timed in process (both hooks, the policy \
match remembered per URL): **{hook_us:.1f} µs**, against about {per_request_us:.0f} µs of \
mitmdump CPU per request at the throughput above ({hook_us / per_request_us:.1%}).

## Protected uploads

{args.uploads} multipart uploads of a 220 x 200 face JPEG (each one different), one at a time; \
the service is `grasp-guard serve` (reference surrogate on the CPU, preset `fast`, policy \
`on_failure: block` so that every 200 is a protected upload).

| measure | value (s) |
|---|---|
| upload through plain mitmdump, p50 | {statistics.median(uploads["plain"]):.3f} |
| upload through the addon, p50 | {statistics.median(uploads["guarded"]):.2f} |
| added latency p50 | {statistics.median(added):.2f} |
| added latency p95 | {pct(added, 95):.2f} |
| added latency max | {max(added):.2f} |

The added latency is the protection itself (the service's optimisation on two shared CPU \
cores; the first upload also pays for the service's first optimisation); the proxy's own \
part is the table above.
"""


def _paired(values: list[float], baseline: list[float]) -> float:
    """The median of the per-round ratios ``values[i] / baseline[i]``."""
    return statistics.median(v / b for v, b in zip(values, baseline, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=600)
    parser.add_argument("--concurrent", type=int, default=1200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "proxy.md")
    parser.add_argument("--site", type=int, help=argparse.SUPPRESS)  # the site's own process
    args = parser.parse_args()
    if args.site:
        serve_site(args.site)
        return
    text = run(args)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
