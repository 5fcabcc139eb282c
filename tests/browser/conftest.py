"""Fixtures of the extension tests: the service, the site, the built extension, Chromium.

Each starts once per session (the service loads its models, Chromium starts slowly on a
busy machine); every port is a free one.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import piexif
import pytest
from _cdp import CHROMIUM, Browser, chromium_with
from _ext_site import CANVAS_SCALE, ExtensionSite
from grasp_sdk.policy import load_policy
from PIL import Image

from grasp_guard.extension.build import Built, build_extension, extension_origin
from grasp_guard.models.weights import CACHE_ENV
from proxy_addon.launch import child, free_port, service_command, wait_ready

CAMERA = b"GraspExtCam"
# A real face: the benchmark's crop of shared/data/faces/img1.jpg (provenance in that
# folder's PROVENANCE.md), shrunk so that its face (about 62 px) has a 128-px crop, which
# the CycleGAN surrogate edits at 128 px only: a protection of seconds, not minutes.
FACE_SOURCE = Path(__file__).resolve().parents[2] / "grasp_guard/benchmarks/faces/img1-0.jpg"
FACE_SIDE = 120
SHRUNK_SIDE = round(FACE_SIDE * CANVAS_SCALE)
POLICY = f"""\
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
  # pages that shrink the photo in a canvas before posting it: the defense is optimised
  # through that resize and re-encode
  - name: guard-shrink
    hosts: [shrink.localhost]
    paths: ["/upload/*"]
    methods: [POST]
    formats: [multipart]
    fields: [photo]
    site_pipeline: {{max_side: {SHRUNK_SIDE}, jpeg_quality: 92}}
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
    """A real face photo (``FACE_SIDE`` px square) as a JPEG with an EXIF camera tag."""
    face = Image.open(FACE_SOURCE).convert("RGB").resize((FACE_SIDE, FACE_SIDE),
                                                         Image.Resampling.LANCZOS)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: CAMERA}})
    buf = io.BytesIO()
    face.save(buf, "JPEG", quality=90, exif=exif)
    path = ext_dir / "me.jpg"
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="session")
def extension(ext_dir: Path, service: Service) -> Built:
    policy = ext_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return build_extension(ext_dir / "unpacked", load_policy(policy), service=service.url)


@pytest.fixture(scope="session")
def service(ext_dir: Path, caller_weights_cache: Path) -> Iterator[Service]:
    """The service on the default surrogates of the caller's weights cache (the real
    CycleGAN once `make setup` fetched it), allowing the extension's origin."""
    settings = ext_dir / "service.yaml"
    # Every upload is admitted (the prior is a crop's time on a free CPU; the deadline,
    # minutes on a busy one); the extension's own limit (270 s) is the one that counts.
    settings.write_text("models: [default]\ndeadline_s: 900\nadmission_prior_s: 5\n"
                        f"cors_origins: [{extension_origin()}]\n", encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = ext_dir / "service.log"
    env = {**os.environ, CACHE_ENV: str(caller_weights_cache)}
    with log.open("wb") as out, child(service_command("127.0.0.1", port, config=settings),
                                      env=env, stdout=out, stderr=subprocess.STDOUT) as proc:
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
