"""`grasp-guard proxy`: the protecting HTTPS proxy (mitmdump with the GRASP Guard addon).

Intercepts TLS only to the hosts the policy names; every other connection passes through
untouched. ``--with-service`` also runs ``grasp-guard serve`` on a free loopback port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import urllib.request
from pathlib import Path

from grasp_sdk.policy import POLICY_ENV, default_policy_path

from grasp_guard.cli.status import ExitStatus
from grasp_guard.config import SERVICE_CONFIG_ENV
from proxy_addon.hosts import allow_hosts
from proxy_addon.launch import (
    CA_CERT,
    DEFAULT_CONFDIR,
    AddonOptions,
    LaunchError,
    bearer,
    child,
    free_port,
    mitmdump_command,
    service_command,
    supervise,
    wait_listening,
    wait_ready,
)
from proxy_addon.settings import DEFAULT_MAX_BUFFER, DEFAULT_SERVICE, TOKEN_ENV

logger = logging.getLogger(__name__)



def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``proxy`` command."""
    parser = subparsers.add_parser(
        "proxy", help="Run the protecting HTTPS proxy.",
        description="Run mitmdump with the GRASP Guard addon: uploads the policy matches "
                    "have their face photos protected by the service on the way out.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (default 127.0.0.1: this machine only).")
    parser.add_argument("--port", type=int, default=8080, help="Port to listen on (default 8080).")
    parser.add_argument("--policy", type=Path, default=None,
                        help=f"The upload policy (default: ${POLICY_ENV}, else the policy "
                             "shipped with grasp_sdk).")
    service = parser.add_mutually_exclusive_group()
    service.add_argument("--service", action="append", metavar="URL",
                         help=f"A protection service base URL (default {DEFAULT_SERVICE}); "
                              "repeat it for endpoints tried in turn.")
    service.add_argument("--with-service", action="store_true",
                         help="Also run `grasp-guard serve` on a free loopback port, and use it.")
    parser.add_argument("--service-config", type=Path,
                        help="With --with-service: the service's settings file (default: "
                             f"${SERVICE_CONFIG_ENV}, else the shipped service.yaml).")
    parser.add_argument("--token",
                        help=f"The service's bearer token. Prefer ${TOKEN_ENV}: a flag is "
                             "visible to other local users.")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="Seconds to protect one upload before the site's on_failure "
                             "applies (default 60).")
    parser.add_argument("--max-buffer", type=int, default=DEFAULT_MAX_BUFFER,
                        help="Largest body (bytes) held back for protection; larger ones "
                             f"stream untouched (default {DEFAULT_MAX_BUFFER}).")
    parser.add_argument("--confdir", type=Path, default=DEFAULT_CONFDIR,
                        help="mitmproxy's folder, where its CA certificate is created on the "
                             "first run (default ~/.mitmproxy).")
    parser.add_argument("--set", dest="mitm_sets", action="append", default=[],
                        metavar="OPTION=VALUE",
                        help="A further mitmproxy option, passed to mitmdump as is "
                             "(e.g. ssl_verify_upstream_trusted_ca=FILE); repeatable.")
    parser.set_defaults(func=_proxy)


def _proxy(args: argparse.Namespace) -> int:
    policy_path = (args.policy or default_policy_path()).expanduser().resolve()
    hosts = allow_hosts(policy_path)  # a broken policy stops here, naming file, site, field
    if args.timeout <= 0 or args.max_buffer < 1024:
        raise ValueError("--timeout must be positive and --max-buffer at least 1024")
    if args.service_config and not args.with_service:
        raise ValueError("--service-config applies to --with-service only")
    if _connect_host(args.host) not in ("127.0.0.1", "::1", "localhost"):
        print(f"grasp-guard proxy: listening on {args.host}: anyone who reaches that address "
              "can use this proxy", file=sys.stderr)
    env = dict(os.environ)
    if args.token:
        env[TOKEN_ENV] = args.token
    confdir = args.confdir.expanduser()
    try:
        with contextlib.ExitStack() as stack:
            children = []
            services = tuple(args.service or (DEFAULT_SERVICE,))
            if args.with_service:
                port = free_port()
                services = (f"http://127.0.0.1:{port}",)
                serve = stack.enter_context(
                    child(service_command("127.0.0.1", port, config=args.service_config,
                                          verbose=args.verbose), env=env))
                children.append(serve)
                print(f"grasp-guard proxy: starting the protection service on {services[0]} "
                      "(loading the models)...", file=sys.stderr, flush=True)
                wait_ready(services[0], serve, token=env.get(TOKEN_ENV))
            options = AddonOptions(policy_path, services, args.timeout, args.max_buffer)
            argv = mitmdump_command(host=args.host, port=args.port, confdir=confdir,
                                    allow_hosts=hosts, stream_large_bodies=args.max_buffer,
                                    addon=options, extra_sets=args.mitm_sets)
            proxy = stack.enter_context(child(argv, env=env))
            wait_listening(_connect_host(args.host), args.port, proxy)
            print(_banner(args.host, args.port, proxy.pid, policy_path, services, len(hosts),
                          confdir / CA_CERT), flush=True)
            if (warning := _slow_device_warning(services[0], args.timeout,
                                                env.get(TOKEN_ENV))) is not None:
                print(warning, file=sys.stderr, flush=True)
            status = supervise(proxy, children)
    except LaunchError as exc:
        if args.traceback:
            raise
        print(f"grasp-guard: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR
    if status == -signal.SIGINT:
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if status <= 0 else ExitStatus.ERROR


# Under this many seconds per upload, a face protected on a CPU (minutes with `balanced`)
# is not protected in time.
_CPU_TIMEOUT_S = 1800.0


def _slow_device_warning(service: str, timeout_s: float, token: str | None = None) -> str | None:
    """A warning when ``service`` protects on a CPU and uploads wait less than it takes."""
    request = urllib.request.Request(service.rstrip("/") + "/readyz", headers=bearer(token))
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            device = str(json.load(resp).get("device", ""))
    except (OSError, ValueError, AttributeError):  # not known: no warning
        return None
    if not device.startswith("cpu") or timeout_s >= _CPU_TIMEOUT_S:
        return None
    return (f"grasp-guard proxy: warning: the service protects on a CPU, minutes a face; an "
            f"upload waits --timeout {timeout_s:g} s, then goes as its site's on_failure says "
            f"(pass: unprotected). On a CPU, give it --timeout {_CPU_TIMEOUT_S:g} and the "
            "service a deadline_s as long (README: \"On a CPU\").")


def _connect_host(host: str) -> str:
    """Where to check that the proxy listens: a wildcard address listens on loopback too."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _banner(host: str, port: int, pid: int, policy: Path, services: tuple[str, ...],
            patterns: int, ca: Path) -> str:
    proxy = f"http://{host}:{port}"
    return f"""\
GRASP Guard proxy on {proxy} (mitmdump pid {pid})
  policy:   {policy} (TLS intercepted for {patterns} host pattern(s); all else passes through)
  service:  {', '.join(services)}
  CA:       {ca}
Clients must trust the CA certificate above (created on the first run):
  curl:      curl --proxy {proxy} --cacert {ca} https://...
  Python:    REQUESTS_CA_BUNDLE={ca} (requests); SSL_CERT_FILE={ca} (urllib, aiohttp)
  Firefox:   Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import
  Chromium:  Settings > Privacy and security > Security > Manage certificates > Authorities
             > Import; start it with --proxy-server={proxy}
  Debian:    sudo cp {ca} /usr/local/share/ca-certificates/grasp-guard-mitmproxy.crt
             && sudo update-ca-certificates
  macOS:     sudo security add-trusted-cert -d -r trustRoot
             -k /Library/Keychains/System.keychain {ca}
Keep mitmproxy-ca.pem (the CA's private key, in the same folder) private: it can
impersonate any site to a machine that trusts the CA. Ctrl-C stops the proxy."""
