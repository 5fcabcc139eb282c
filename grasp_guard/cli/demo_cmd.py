"""`grasp-guard demo`: the whole story on this machine — service, proxy, a photo site, an upload.

By default it starts the protection service (the default surrogates), the proxy and a
local HTTPS photo site, all on loopback; uploads the sample photo through the proxy as a
browser would; and shows what the site received beside the original. ``--serve`` keeps the
three running for a real browser until Ctrl-C. ``--offline`` protects the sample in-process
instead, with no service, proxy or site.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
from grasp_sdk.policy import load_policy

from grasp_guard.cli.status import ExitStatus
from grasp_guard.demo_site import (
    RECEIVED_PATH,
    UPLOAD_FIELD,
    UPLOAD_PATH,
    create_app,
    make_certs,
    serve,
)
from grasp_guard.extension.build import SOURCE as EXTENSION_SOURCE
from grasp_guard.extension.build import build_extension, extension_origin
from grasp_guard.json_report import dumps
from proxy_addon.hosts import allow_hosts
from proxy_addon.launch import (
    CA_CERT,
    DEFAULT_CONFDIR,
    AddonOptions,
    LaunchError,
    child,
    free_port,
    mitmdump_command,
    platform_signals,
    service_command,
    wait_listening,
    wait_ready,
)
from proxy_addon.settings import DEFAULT_MAX_BUFFER

T = TypeVar("T")
SAMPLE_NAME = "astronaut.jpg"
# The demo runs `balanced`, the preset that protects at an attacker's framing too: its face
# took 444 s of optimisation on two cores without AVX-512 (float32) with nothing beside it, and
# 817 s through the proxy beside a benchmark (bench/results/large_face_probe.md). Room for a
# slower machine: the service's deadline, then the proxy's, then the client's.
DEMO_PRESET = "balanced"
SERVICE_DEADLINE_S = 1800.0
PROXY_TIMEOUT_S = 1830.0
CLIENT_TIMEOUT_S = 1860.0
PROXY_START_S = 120.0
_PATIENCE = {p: "; on a CPU, minutes per face" for p in ("balanced", "strong")}
STOP_SIGNALS = platform_signals("SIGTERM", "SIGHUP")  # SIGINT is asyncio.run's: KeyboardInterrupt
POLICY = """\
# The demo's policy: protect photos posted to the demo site's upload form, refuse the
# upload when protection fails (the demo must never pass an unprotected photo off as done).
version: 1
defaults:
  preset: {preset}
  on_failure: block
sites:
  - name: demo-site
    hosts: [localhost]
    paths: [{path}]
    methods: [POST]
    formats: [multipart]
    fields: [{field}]
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``demo`` command."""
    parser = sub.add_parser(
        "demo", help="Upload a sample photo through the proxy to a local site, show what arrived.",
        description="Start the protection service (the default surrogates), the proxy and a "
                    "local demo photo site on 127.0.0.1; upload a sample face photo through the "
                    "proxy as a browser would; write what the site received beside the original.")
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="Where to write the pictures, the report and the logs "
                             "(default demo-output).")
    parser.add_argument("--preset", choices=("fast", "balanced", "strong"),
                        help=f"The optimisation budget (default {DEMO_PRESET}: protects at an "
                             "attacker's framing too, minutes per face on a CPU; fast: a "
                             "preview tuned to our own crop only).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--serve", action="store_true",
                      help="Keep the service, the proxy and the demo site running until Ctrl-C, "
                           "and print how to point a browser at them.")
    mode.add_argument("--offline", action="store_true",
                      help="Protect the sample in this process: no service, proxy or site.")
    parser.add_argument("--confdir", type=Path,
                        help="mitmproxy's folder, where its CA lives (default: a fresh one in a "
                             f"temporary folder; with --serve, {DEFAULT_CONFDIR}, so that a CA "
                             "a browser trusts stays the same between runs).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.offline:
        return _offline(args)
    from grasp_guard.demo import sample_photo

    try:
        if args.serve:
            _run_async(_serve(args))
        original = sample_photo()
        upload = _run_async(_upload_sample(args, original))
    except (LaunchError, aiohttp.ClientError) as exc:
        if args.traceback:
            raise
        print(f"grasp-guard: error: {exc}\n  logs: {args.out / 'service.log'}, "
              f"{args.out / 'proxy.log'}", file=sys.stderr)
        return ExitStatus.ERROR
    if upload.received is None:
        print(f"grasp-guard: error: the upload was refused ({upload.status}): "
              f"{upload.answer.decode('utf-8', 'replace')[:1000]}", file=sys.stderr)
        return ExitStatus.ERROR
    return _show(args.out, original, upload, args.preset or DEMO_PRESET)


def _run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; SIGTERM and SIGHUP cancel it as Ctrl-C does, so its children are stopped.

    Raises:
        KeyboardInterrupt: a signal stopped it.
    """
    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError):  # Windows' loop: Ctrl-C still stops it
                loop.add_signal_handler(sig, task.cancel)
        return await main

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


@dataclass(frozen=True)
class Stack:
    """The running demo: service, proxy and site, on loopback.

    Attributes:
        service: the service's base URL.
        proxy: the proxy's URL.
        site: the demo site's base URL (``https://localhost:PORT``).
        ca: the proxy's CA certificate, which clients must trust.
        policy: the policy file the proxy runs with.
        processes: the children by name, to watch.
    """

    service: str
    proxy: str
    site: str
    ca: Path
    policy: Path
    processes: dict[str, subprocess.Popen[bytes]]


@contextlib.asynccontextmanager
async def _stack(folder: Path, confdir: Path, logs: Path, preset: str,
                 verbose: bool, cors_origins: tuple[str, ...] = ()) -> AsyncIterator[Stack]:
    """Start the service (allowing ``cors_origins``), the proxy and the site; stop them all
    on the way out."""
    certs = make_certs(folder)
    policy = folder / "policy.yaml"
    policy.write_text(POLICY.format(preset=preset, path=UPLOAD_PATH, field=UPLOAD_FIELD),
                      encoding="utf-8")
    settings = folder / "service.yaml"
    settings.write_text(f"deadline_s: {SERVICE_DEADLINE_S:g}\n"
                        f"cors_origins: {json.dumps(list(cors_origins))}\n", encoding="utf-8")
    service_port, proxy_port = free_port(), free_port()
    service = f"http://127.0.0.1:{service_port}"
    addon = AddonOptions(policy, (service,), PROXY_TIMEOUT_S, DEFAULT_MAX_BUFFER)
    mitmdump = mitmdump_command(
        host="127.0.0.1", port=proxy_port, confdir=confdir, allow_hosts=allow_hosts(policy),
        stream_large_bodies=DEFAULT_MAX_BUFFER, addon=addon,
        extra_sets=[f"ssl_verify_upstream_trusted_ca={certs.ca}"])
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        service_log = stack.enter_context((logs / "service.log").open("wb"))
        proxy_log = stack.enter_context((logs / "proxy.log").open("wb"))
        serving = stack.enter_context(child(
            service_command("127.0.0.1", service_port, config=settings, verbose=verbose),
            stdout=service_log, stderr=subprocess.STDOUT))
        proxying = stack.enter_context(child(mitmdump, stdout=proxy_log,
                                             stderr=subprocess.STDOUT))
        print(f"starting the protection service (default surrogates) on {service}, the proxy "
              f"on http://127.0.0.1:{proxy_port} and the demo site ...", flush=True)
        async with serve(create_app(), certs) as site_port:
            await asyncio.gather(
                asyncio.to_thread(wait_listening, "127.0.0.1", proxy_port, proxying, PROXY_START_S),
                asyncio.to_thread(wait_ready, service, serving))
            yield Stack(service, f"http://127.0.0.1:{proxy_port}", f"https://localhost:{site_port}",
                        confdir / CA_CERT, policy, {"service": serving, "proxy": proxying})


@dataclass(frozen=True)
class Upload:
    """The sample's trip: what the proxy or site answered, and what the site then held.

    Attributes:
        status: the upload's HTTP status.
        answer: the upload's response body.
        received: the photo the site serves back (None when the upload was refused).
        seconds: how long the upload took, protection included.
    """

    status: int
    answer: bytes
    received: bytes | None
    seconds: float


async def _upload(stack: Stack, photo: bytes) -> Upload:
    """Load the site's page and post ``photo`` from its form through the proxy, as a browser
    does; then fetch what the site received."""
    context = ssl.create_default_context(cafile=stack.ca)
    browser = {"Origin": stack.site, "Referer": stack.site + "/"}
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(stack.site + "/", proxy=stack.proxy, ssl=context) as resp:
            resp.raise_for_status()
        form = aiohttp.FormData()
        form.add_field(UPLOAD_FIELD, photo, filename=SAMPLE_NAME, content_type="image/jpeg")
        started = time.monotonic()
        async with session.post(stack.site + UPLOAD_PATH, data=form, headers=browser,
                                proxy=stack.proxy, ssl=context) as resp:
            status, answer = resp.status, await resp.read()
        seconds = time.monotonic() - started
        if status != 200:
            return Upload(status, answer, None, seconds)
        async with session.get(stack.site + RECEIVED_PATH, proxy=stack.proxy, ssl=context) as resp:
            resp.raise_for_status()
            return Upload(status, answer, await resp.read(), seconds)


async def _upload_sample(args: argparse.Namespace, original: bytes) -> Upload:
    """Start the demo, upload ``original`` through the proxy, stop the demo."""
    preset = args.preset or DEMO_PRESET
    with tempfile.TemporaryDirectory(prefix="grasp-guard-demo-") as tmp:
        folder = Path(tmp)
        confdir = args.confdir.expanduser() if args.confdir else folder / "confdir"
        async with _stack(folder, confdir, args.out, preset, args.verbose) as stack:
            print(f"uploading the sample photo ({SAMPLE_NAME}, {len(original)} bytes) to "
                  f"{stack.site}{UPLOAD_PATH} through the proxy, as a browser would "
                  f"(preset {preset}{_PATIENCE.get(preset, '')}) ...", flush=True)
            return await _upload(stack, original)


def _show(out: Path, original: bytes, upload: Upload, preset: str) -> int:
    """Measure what the site received against the original; write and print it all."""
    from PIL import Image

    from grasp_guard.demo import comparison, face_regions, metadata_report
    from grasp_guard.pipeline import Engine
    from grasp_guard.verify import verify

    received = upload.received
    assert received is not None
    print(f"the site answered {upload.status} after {upload.seconds:.1f} s; measuring what it "
          "received against the original with the default surrogates ...", flush=True)
    engine = Engine.create()
    report = verify(original, received, engine)
    report["metadata"] = metadata_report(original, received)
    report["upload"] = {"status": upload.status, "preset": preset,
                        "seconds": round(upload.seconds, 2),
                        "bytes_sent": len(original), "bytes_received": len(received),
                        "site_answer": json.loads(upload.answer)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "original.jpg").write_bytes(original)
    (out / "received.jpg").write_bytes(received)
    (out / "report.json").write_text(dumps(report, indent=2) + "\n")
    Image.fromarray(comparison(original, received, face_regions(original), engine)).save(
        out / "comparison.png")
    print(_summary(report, received != original))
    print(f"\nwrote {out}/original.jpg, received.jpg (what the site got), report.json and "
          "comparison.png (per face: the original crop, the received crop, their difference "
          "x20, then each surrogate edit: of the original | of the received)")
    print(TRY_IT)
    return ExitStatus.OK


def _summary(report: dict[str, Any], changed: bool) -> str:
    from grasp_guard.verify import PROTECTED_AT

    upload, meta = report["upload"], report["metadata"]
    bytes_ = "different bytes from the original" if changed else "THE ORIGINAL BYTES, unprotected"
    lines = [
        (f"\nwhat the site received: {upload['bytes_received']} bytes "
         f"(sent {upload['bytes_sent']}), {bytes_}"),
        (f"  faces: {len(report['faces'])}; verdict: {report['verdict']} "
         f"(DSR CMUA {report['dsr_cmua']:.2f}, Ruiz {report['dsr_ruiz']:.2f}; "
         f"with the attacker's own framing {report['dsr_framed']:.2f})"),
    ]
    edits = [s for face in report["faces"] for s in face["surrogates"].values()]
    ours = min((s["dsr_cmua"] for s in edits), default=report["dsr_cmua"])
    framed = min((s["dsr_framed"] for s in edits), default=report["dsr_framed"])
    if ours >= PROTECTED_AT > framed:  # the verdict's worst case, as verify judges it
        lines.append("  (protected at our own crop of the face only: the verdict also weighs an "
                     + ("attacker's crop; `--preset balanced` optimises for any framing, minutes "
                        "per face on a CPU)" if upload["preset"] == "fast" else
                        "attacker's crop: not reached at enough of them for this face)"))
    for i, face in enumerate(report["faces"]):
        lines.append(f"  face {i} at {face['box']}: PSNR {face['psnr']:.2f} dB")
        lines += [f"    {name}: DSR CMUA {s['dsr_cmua']:.2f}, Ruiz {s['dsr_ruiz']:.2f}, "
                  f"framed {s['dsr_framed']:.2f}, distortion {s['distortion']:.4f}"
                  for name, s in face["surrogates"].items()]
    kept = ", ".join(f"{k} {v!r}" for k, v in meta["kept"].items()) or "none"
    lines += [
        f"  whole image vs the original: PSNR {report['psnr']:.2f} dB, SSIM {report['ssim']:.4f}",
        f"  EXIF kept: {kept}" + (f"; lost: {', '.join(meta['lost'])}" if meta["lost"] else ""),
        f"  EXIF thumbnail: {meta['thumbnail']}",
        "  surrogate: " + "; ".join(report["surrogates"]),
    ]
    return "\n".join(lines)


TRY_IT = f"""
try it with a real browser:
  grasp-guard demo --serve
      keeps the service, the proxy and the demo site running until Ctrl-C, and prints the
      site's address and a Chromium command line that goes through the proxy
  grasp-guard proxy --with-service
      the proxy for real sites (the shipped policy) on http://127.0.0.1:8080: set it as the
      browser's HTTP and HTTPS proxy and trust its CA, {DEFAULT_CONFDIR / CA_CERT}
      (created on its first run; its banner says how, per browser and system)"""


async def _serve(args: argparse.Namespace) -> NoReturn:
    """Run the demo until a signal or a child's exit; print how to reach it meanwhile."""
    preset = args.preset or DEMO_PRESET
    confdir = (args.confdir or DEFAULT_CONFDIR).expanduser()
    origins = (extension_origin(),) if EXTENSION_SOURCE.is_dir() else ()
    with tempfile.TemporaryDirectory(prefix="grasp-guard-demo-") as tmp:
        async with _stack(Path(tmp), confdir, args.out, preset, args.verbose,
                          origins) as stack:
            print(_serve_banner(stack, preset, args.out), flush=True)
            print(_extension_banner(stack, Path(tmp) / "site-cert.pem", args.out / "extension"),
                  flush=True)
            while True:
                for name, proc in stack.processes.items():
                    if proc.poll() is not None:
                        raise LaunchError(f"the {name} exited with status {proc.returncode}")
                await asyncio.sleep(1.0)


def _serve_banner(stack: Stack, preset: str, logs: Path) -> str:
    page = stack.site + "/"
    port = stack.proxy.rsplit(":", 1)[1]
    return f"""
GRASP Guard demo, running until Ctrl-C (everything on this machine):
  demo site:  {page}   pick a face photo there
  proxy:      {stack.proxy}   protects uploads to {stack.site}{UPLOAD_PATH} only
  service:    {stack.service}   default surrogates, preset {preset}
  CA:         {stack.ca}
  policy:     {stack.policy}
  logs:       {logs / 'service.log'}, {logs / 'proxy.log'}
Chromium, in a throwaway profile that trusts the proxy's CA (nothing to import):
  chromium --user-data-dir="$(mktemp -d)" --proxy-server={stack.proxy} \\
    --proxy-bypass-list='<-loopback>' \\
    --ignore-certificate-errors-spki-list={spki_sha256(stack.ca)} {page}
  (browsers skip proxies for localhost unless told: that is what <-loopback> undoes)
Firefox: Settings > Network Settings > Manual proxy configuration: HTTP proxy 127.0.0.1,
  port {port}, "Also use this proxy for HTTPS"; in about:config set
  network.proxy.allow_hijacking_localhost to true; import the CA under Settings > Privacy
  & Security > Certificates > View Certificates > Authorities ("identify websites").
curl:
  curl --noproxy '' --proxy {stack.proxy} --cacert {stack.ca} \\
    -F {UPLOAD_FIELD}=@face.jpg {stack.site}{UPLOAD_PATH}
Keep mitmproxy-ca.pem (the CA's private key, beside the certificate) private."""


def _extension_banner(stack: Stack, site_cert: Path, out: Path) -> str:
    """Build the browser extension for the demo site and this service; how to try it."""
    if not EXTENSION_SOURCE.is_dir():
        return "\nBrowser extension: build it from a checkout (`grasp-guard extension build`)."
    built = build_extension(out, load_policy(stack.policy), service=stack.service)
    page = stack.site + "/"
    return f"""
Browser extension instead of the proxy (no proxy, no CA; built for this demo in {built.folder}):
  chromium --user-data-dir="$(mktemp -d)" --load-extension={built.folder} \\
    --ignore-certificate-errors-spki-list={spki_sha256(site_cert)} {page}
  or chrome://extensions > Developer mode > Load unpacked > {built.folder}
  The page then only ever sees the protected copy (so it reports the bytes it sent as the
  ones the site got); the extension's notice and badge say it was protected."""


def spki_sha256(cert_pem: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium's SPKI lists take it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _offline(args: argparse.Namespace) -> int:
    """Protect the sample in this process; write original, protected, report and comparison."""
    from grasp_sdk.options import ProtectOptions
    from PIL import Image

    from grasp_guard.demo import comparison, sample_photo
    from grasp_guard.pipeline import Engine, prepare, protect_prepared

    options = ProtectOptions(preset=args.preset or DEMO_PRESET)
    engine = Engine.create()
    print("surrogates:", "; ".join(engine.labels))
    original = sample_photo()
    print(f"protecting the sample photo ({len(original)} bytes, scikit-image's astronaut; "
          f"preset {options.preset}{_PATIENCE.get(options.preset, '')}) ...")
    prepared = prepare(original, options)
    protected, report = protect_prepared(prepared, engine)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "original.jpg").write_bytes(original)
    (args.out / "protected.jpg").write_bytes(protected)
    (args.out / "report.json").write_text(dumps(report, indent=2) + "\n")
    Image.fromarray(comparison(original, protected, prepared.regions, engine)).save(
        args.out / "comparison.png")
    print(dumps({k: v for k, v in report.items() if k != "faces"}, indent=2))
    for i, face in enumerate(report["faces"]):
        dsr = ", ".join(f"{n}: DSR {s['dsr_cmua']:.2f} (framed {s['dsr_framed']:.2f})"
                        for n, s in face["surrogates"].items())
        print(f"face {i} at {face['box']}: PSNR {face['psnr']:.2f} dB, SSIM {face['ssim']:.4f}, "
              f"{face['iterations']} iterations, {dsr}")
    print(f"\nwrote {args.out}/original.jpg, protected.jpg, report.json and comparison.png "
          "(rows: face crop, protected crop, 20x difference, then each edit: clean | protected)")
    return ExitStatus.OK
