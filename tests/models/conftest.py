"""Fixtures for the model zoo tests: a tiny zoo file and a loopback file server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _zoo_helpers import TINY_ATTGAN, TINY_STARGAN, Server, ZooFactory

from grasp_guard.models.attgan import ATTGAN_ATTRIBUTES
from grasp_guard.models.editor import Editor
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES
from grasp_guard.models.zoo import load_editor


@pytest.fixture
def make_zoo(tmp_path: Path) -> ZooFactory:
    """Write a zoo file with the official entries' shape at tiny sizes."""

    def make(stargan_url: str | None = None, stargan_sha256: str | None = None) -> Path:
        attgan = {k: v for k, v in TINY_ATTGAN.items() if k != "img_size"}
        models = {
            "stargan-tiny": {
                "architecture": "stargan",
                "description": "tiny StarGAN",
                "resolution": 16,
                "attributes": list(CELEBA_ATTRIBUTES),
                "options": TINY_STARGAN,
                "url": stargan_url,
                "archive_member": "200000-G.ckpt",
                "sha256": stargan_sha256,
            },
            **{
                f"attgan-tiny-inject{inject}": {
                    "architecture": "attgan",
                    "description": f"tiny AttGAN inject {inject}",
                    "resolution": TINY_ATTGAN["img_size"],
                    "attributes": list(ATTGAN_ATTRIBUTES),
                    "options": {**attgan, "shortcut_layers": 1, "inject_layers": inject},
                }
                for inject in (0, 1)
            },
        }
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump({"models": models}))
        return path

    return make


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Server]:
    """A static file server on 127.0.0.1 for ``tmp_path / 'www'``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def seeded_stargan() -> Editor:
    """The full-size seeded StarGAN-128 (seed 0), built once: calibrating it takes seconds."""
    return load_editor("stargan-celeba-128", seeded=True)


@pytest.fixture(scope="session")
def seeded_attgan() -> Editor:
    """The full-size seeded AttGAN-128 (seed 0), built once."""
    return load_editor("attgan-celeba-128", seeded=True)
