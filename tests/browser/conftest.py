"""Fixtures of the extension tests: the service, the site, the built extension, Chromium.

Each starts once per session (the service loads its models, Chromium starts slowly on a
busy machine); every port is a free one.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import piexif
import pytest
from _cdp import CHROMIUM, Browser, chromium_with
from _ext_site import ExtensionSite
from grasp_sdk.policy import load_policy
from PIL import Image
from skimage import data

from grasp_guard.extension.build import Built, build_extension, extension_origin
from proxy_addon.launch import child, free_port, service_command, wait_ready

CAMERA = b"GraspExtCam"
POLICY = """\
version: 1
defaults:
  preset: fast
  on_failure: pass
sites:
  - name: guard-pass
    hosts: [pass.localhost]
    paths: ["/upload/*"]
    methods: [POST]
    formats: [multipart]
    fields: [photo]
  - name: guard-block
    hosts: [block.localhost]
    paths: ["/upload/*"]
    methods: [POST]
    formats: [multipart]
    fields: [photo]
    on_failure: block
"""


@dataclass(frozen=True)
class Service:
    """The running protection service."""

    url: str
    log: Path


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("extension")


@pytest.fixture(scope="session")
def face_file(ext_dir: Path) -> Path:
    """The astronaut's face (220 x 200 px) as a JPEG with an EXIF camera tag."""
    face = data.astronaut()[20:240, 140:340]
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: CAMERA}})
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG", quality=90, exif=exif)
    path = ext_dir / "me.jpg"
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="session")
def extension(ext_dir: Path, service: Service) -> Built:
    policy = ext_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return build_extension(ext_dir / "unpacked", load_policy(policy), service=service.url)


@pytest.fixture(scope="session")
def service(ext_dir: Path) -> Iterator[Service]:
    """The service on the reference surrogate, allowing the extension's origin."""
    settings = ext_dir / "service.yaml"
    # Every upload of a test module is admitted at once, to be batched (the prior is a
    # crop's time on a free CPU; the deadline, minutes of batches on a busy one).
    settings.write_text("models: [reference]\ndeadline_s: 900\nadmission_prior_s: 5\n"
                        f"cors_origins: [{extension_origin()}]\n", encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = ext_dir / "service.log"
    with log.open("wb") as out, child(service_command("127.0.0.1", port, config=settings),
                                      stdout=out, stderr=subprocess.STDOUT) as proc:
        wait_ready(url, proc)
        yield Service(url, log)


@pytest.fixture(scope="session")
def site() -> Iterator[ExtensionSite]:
    with ExtensionSite() as running:
        yield running


@pytest.fixture(scope="session")
def browser(extension: Built, ext_dir: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    with chromium_with(extension.folder, ext_dir) as running:
        yield running
