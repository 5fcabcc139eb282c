"""``build_extension``: the unpacked extension, ready for "Load unpacked".

The output folder holds ``browser/`` (its tests aside), the JavaScript SDK under ``sdk/``,
``config.js`` (the compiled policy, the page hosts of each site and the service's
default URL), the two content scripts bundled into classic scripts (:mod:`.bundle`), and
a manifest whose content-script matches cover the sites' pages only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grasp_sdk.policy import Policy
from grasp_sdk.policy_json import compile_policy

from grasp_guard.errors import ConfigError
from grasp_guard.extension.bundle import bundle

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCE = CHECKOUT / "browser"
JS_SDK = CHECKOUT / "sdk" / "js"
DEFAULT_PAGES = SOURCE / "pages.json"
DEFAULT_SERVICE = "http://127.0.0.1:8765"
CONTENT_SCRIPTS = ("content.js", "page.js")
LEFT_OUT = ("test", "pages.json")
# A match pattern's host: a name, *.name, or an IPv6 address (bracketed in the pattern).
MATCHABLE = re.compile(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*|[0-9a-f:]+")


@dataclass(frozen=True)
class Built:
    """What was built.

    Attributes:
        folder: the unpacked extension.
        extension_id: its Chromium ID (fixed by the manifest's key).
        origin: what it sends as ``Origin``, for the service's ``cors_origins``.
        matches: the pages its content scripts run on.
        ignored: pages.json sites the policy does not have.
    """

    folder: Path
    extension_id: str
    origin: str
    matches: tuple[str, ...]
    ignored: tuple[str, ...]


def extension_id(public_key_b64: str) -> str:
    """Chromium's ID of an extension with this manifest ``key``: the first 128 bits of
    the SHA-256 of the key, each hex digit written as a letter a-p."""
    digest = hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:32]
    return "".join(chr(ord("a") + int(c, 16)) for c in digest)


def extension_origin(manifest: Path = SOURCE / "manifest.json") -> str:
    """What the extension of ``manifest`` sends as ``Origin``: ``chrome-extension://<id>``,
    for the service's ``cors_origins`` (Chromium; Firefox gives each install its own)."""
    key = json.loads(manifest.read_text(encoding="utf-8"))["key"]
    return f"chrome-extension://{extension_id(key)}"


def read_pages(path: Path) -> dict[str, list[str]]:
    """The ``pages`` mapping of a pages.json: site name → page host patterns."""
    try:
        pages = json.loads(path.read_text(encoding="utf-8"))["pages"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a pages file ({exc})") from exc
    valid = isinstance(pages, dict) and all(
        isinstance(hosts, list) and all(isinstance(h, str) and h.strip() for h in hosts)
        for hosts in pages.values())
    if not valid:
        raise ConfigError(f"{path}: 'pages' must map site names to lists of host patterns")
    return {name: [h.strip() for h in hosts] for name, hosts in pages.items()}


def content_matches(policy: Policy, pages: dict[str, list[str]]) -> tuple[str, ...]:
    """Match patterns for every enabled site's page hosts (its hosts but ``*``, and
    ``pages``); ``<all_urls>`` when one cannot be written as a match pattern (the content
    scripts check the host again)."""
    hosts = {h.lower() for site in policy.sites if site.enabled
             for h in [*(p.text for p in site.hosts), *pages.get(site.name, [])] if h != "*"}
    if not all(MATCHABLE.fullmatch(h) for h in hosts):
        return ("<all_urls>",)
    return tuple(sorted(f"*://[{h}]/*" if ":" in h else f"*://{h}/*" for h in hosts))


def _config_module(policy: Policy, pages: dict[str, list[str]], service: str) -> str:
    def constant(name: str, value: Any) -> str:
        return f"export const {name} = {json.dumps(value, indent=1)};\n"

    return ("// Written by `grasp-guard extension build`; do not edit.\n"
            + constant("POLICY", compile_policy(policy)) + constant("PAGES", pages)
            + constant("SERVICE", service))


def build_extension(out: Path, policy: Policy, *, pages_file: Path = DEFAULT_PAGES,
                    service: str = DEFAULT_SERVICE) -> Built:
    """Write the unpacked extension to ``out`` (replacing what is there).

    Args:
        out: the folder to write.
        policy: the sites it protects (compiled into it: MV3 loads no remote code).
        pages_file: the page hosts of each site (``browser/pages.json`` by default).
        service: the service's URL until the user sets another in the popup.

    Raises:
        ConfigError: no ``browser/`` and ``sdk/js/`` beside the package (not a checkout),
            a bad pages file, or a script outside what the bundler handles.
    """
    if not (SOURCE / "manifest.json").is_file() or not (JS_SDK / "index.js").is_file():
        raise ConfigError(f"the extension is built from a checkout: no {SOURCE} or {JS_SDK}")
    if not re.fullmatch(r"https?://[^/\s]+/?", service):
        raise ConfigError(f"the service URL must be http(s)://host:port, got {service!r}")
    names = {site.name for site in policy.sites}
    all_pages = read_pages(pages_file)
    pages = {name: hosts for name, hosts in all_pages.items() if name in names}
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(SOURCE, out, ignore=shutil.ignore_patterns(*LEFT_OUT))
    shutil.copytree(JS_SDK, out / "sdk", ignore=shutil.ignore_patterns(
        "test", "node_modules", "*.md", "*.d.ts", "package.json"))
    (out / "config.js").write_text(_config_module(policy, pages, service.rstrip("/")),
                                   encoding="utf-8")
    for script in CONTENT_SCRIPTS:
        (out / script).write_text(bundle(out / script), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    matches = content_matches(policy, pages)
    for entry in manifest["content_scripts"]:
        entry["matches"] = list(matches)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Built(out, extension_id(manifest["key"]), extension_origin(out / "manifest.json"),
                 matches, tuple(sorted(set(all_pages) - names)))
