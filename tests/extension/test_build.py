"""`grasp-guard extension build`: the unpacked extension from browser/, the SDK and a policy."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from grasp_sdk import load_policy

from grasp_guard.cli import main
from grasp_guard.errors import ConfigError
from grasp_guard.extension.build import (
    SOURCE,
    build_extension,
    content_matches,
    extension_id,
    extension_origin,
)

POLICY = """\
version: 1
sites:
  - name: photos
    hosts: [upload.photos.example, "*"]
    formats: [multipart]
  - name: switched-off
    enabled: false
    hosts: [off.example]
    formats: [raw]
"""


def test_the_extension_id_is_chromiums_from_the_manifest_key() -> None:
    key = json.loads((SOURCE / "manifest.json").read_text())["key"]
    digest = hashlib.sha256(base64.b64decode(key)).hexdigest()[:32]
    assert extension_id(key) == digest.translate(str.maketrans("0123456789abcdef",
                                                               "abcdefghijklmnop"))
    assert extension_origin() == "chrome-extension://ahmjomckmfaccelbignaaehhaegacbph"


def test_the_build_holds_the_sdk_the_policy_and_bundled_content_scripts(tmp_path: Path) -> None:
    out = tmp_path / "ext"
    out.mkdir()
    (out / "stale.txt").write_text("from an older build")
    built = build_extension(out, load_policy(), service="http://127.0.0.1:9999/")
    assert not (out / "stale.txt").exists() and not (out / "test").exists()
    assert (out / "sdk" / "index.js").is_file() and (out / "sdk" / "src" / "client.js").is_file()
    config = (out / "config.js").read_text()
    assert '"format": "grasp-guard-policy"' in config
    assert 'export const SERVICE = "http://127.0.0.1:9999";' in config
    for script in ("content.js", "page.js"):
        text = (out / script).read_text()
        assert "\nimport " not in text and "\nexport " not in text
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["content_scripts"]:
        assert entry["matches"] == list(built.matches)
    assert "*://www.instagram.com/*" in built.matches  # a page from pages.json
    assert "*://upload.facebook.com/*" in built.matches  # a site's own host
    assert built.origin == extension_origin()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_bundled_content_scripts_parse(tmp_path: Path) -> None:
    build_extension(tmp_path / "ext", load_policy())
    for script in ("content.js", "page.js"):
        subprocess.run(["node", "--check", str(tmp_path / "ext" / script)], check=True, timeout=60)


def test_matches_cover_the_enabled_sites_pages_never_any_host(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert content_matches(policy, {"photos": ["www.photos.example", "*.cdn.example"]}) == (
        "*://*.cdn.example/*", "*://upload.photos.example/*", "*://www.photos.example/*")
    assert content_matches(policy, {"photos": ["up-*.photos.example"]}) == ("<all_urls>",)


def test_pages_of_sites_not_in_the_policy_are_ignored_and_named(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    built = build_extension(tmp_path / "ext", load_policy(path))
    assert "instagram" in built.ignored
    assert "instagram" not in (built.folder / "config.js").read_text()


@pytest.mark.parametrize("pages,message", [
    ('{"pages": {"photos": "www.photos.example"}}', "lists of host patterns"),
    ('{"nothing": 1}', "not a pages file"),
    ("not json", "not a pages file"),
])
def test_a_bad_pages_file_is_refused(tmp_path: Path, pages: str, message: str) -> None:
    (tmp_path / "pages.json").write_text(pages)
    with pytest.raises(ConfigError, match=message):
        build_extension(tmp_path / "ext", load_policy(), pages_file=tmp_path / "pages.json")


def test_a_bad_service_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service URL"):
        build_extension(tmp_path / "ext", load_policy(), service="127.0.0.1:8765")


def test_the_cli_prints_the_origin_for_cors_origins(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extension", "build", "-o", str(tmp_path / "ext")]) == 0
    out = capsys.readouterr().out
    assert f'cors_origins: ["{extension_origin()}"]' in out
    assert (tmp_path / "ext" / "manifest.json").is_file()
