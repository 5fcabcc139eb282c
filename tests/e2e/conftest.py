"""Session fixtures of the end-to-end tests: the site, the certificates, the proxies.

Processes start once per session (the service takes seconds to load its models) and are
stopped at the end; every port is a free one picked by the OS.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _e2e_helpers import POLICY, Proxy, face_photo, run_proxy
from _e2e_site import Certs, Site, make_certs

from proxy_addon.launch import free_port

SERVICE_DEADLINE_S = 480

with warnings.catch_warnings():
    # mitmproxy's proxyauth addon imports ldap3, which uses names pyasn1 0.6 deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    import mitmproxy.addons  # noqa: F401


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def certs(e2e_dir: Path) -> Certs:
    return make_certs(e2e_dir)


@pytest.fixture(scope="session")
def site(certs: Certs) -> Iterator[Site]:
    with Site(certs) as running:
        yield running


@pytest.fixture(scope="session")
def policy(e2e_dir: Path) -> Path:
    path = e2e_dir / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def face() -> bytes:
    return face_photo()


@pytest.fixture(scope="session")
def guarded(e2e_dir: Path, policy: Path, certs: Certs) -> Iterator[Proxy]:
    """The proxy with a live protection service (`--with-service`, the reference surrogate)."""
    # A batch of faces can take minutes on two busy cores: a deadline that waits for it.
    settings = e2e_dir / "service.yaml"
    settings.write_text(f"deadline_s: {SERVICE_DEADLINE_S}\n", encoding="utf-8")
    with run_proxy(e2e_dir / "guarded", free_port(), policy, certs.ca,
                   ["--with-service", "--service-config", str(settings),
                    "--timeout", str(SERVICE_DEADLINE_S)]) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def orphan(e2e_dir: Path, policy: Path, certs: Certs) -> Iterator[Proxy]:
    """The proxy whose protection service is down (nothing listens on its port)."""
    with run_proxy(e2e_dir / "orphan", free_port(), policy, certs.ca,
                   ["--service", f"http://127.0.0.1:{free_port()}", "--timeout", "10"]) as proxy:
        yield proxy


def bundle(proxy: Proxy, certs: Certs) -> Path:
    """A CA file trusting the proxy's CA and the site's: what a configured client has."""
    path = proxy.ca.with_name("bundle.pem")
    if not path.exists():
        path.write_bytes(proxy.ca.read_bytes() + certs.ca.read_bytes())
    return path


@pytest.fixture(scope="session")
def guarded_bundle(guarded: Proxy, certs: Certs) -> Path:
    return bundle(guarded, certs)


@pytest.fixture(scope="session")
def orphan_bundle(orphan: Proxy, certs: Certs) -> Path:
    return bundle(orphan, certs)
