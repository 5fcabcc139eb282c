"""The per-site upload policy: which requests carry images to protect, and how.

A policy file (YAML) has a ``defaults`` block and an ordered list of ``sites``; the first
enabled site whose host, path and method match a request wins. The policy shipped with the
SDK (``grasp_sdk/policy.yaml``, package data) documents every field inline; it is the
default of :func:`load_policy` unless ``$GRASP_GUARD_POLICY`` names another file.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.resources
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from grasp_sdk.errors import PolicyError
from grasp_sdk.options import (
    ON_NO_FACE,
    PRESETS,
    SIZE_MODES,
    OnNoFace,
    ProtectOptions,
    SizeMode,
)
from grasp_sdk.patterns import HostPattern, PathPattern, parse_host, parse_path

#: The environment variable naming the policy file that replaces the shipped one.
POLICY_ENV = "GRASP_GUARD_POLICY"
FORMATS = ("multipart", "raw", "json_base64", "form_base64")
ON_FAILURE = ("pass", "block")
OnFailure = Literal["pass", "block"]
#: The split-upload protocols a proxy can reassemble: X's INIT / APPEND / FINALIZE.
CHUNKED_PROTOCOLS = ("x",)


@dataclass(frozen=True)
class SitePipeline:
    """What a site does to an uploaded image, for the defense to survive.

    Attributes:
        jpeg_quality: the range of JPEG qualities the site re-encodes with.
        max_side: the longest side the site resizes to (pixels).
        blur_sigma: a Gaussian blur the site applies (pixels).
    """

    jpeg_quality: tuple[int, int] | None = None
    max_side: int | None = None
    blur_sigma: float | None = None


@dataclass(frozen=True)
class ChunkedUpload:
    """How a proxy holds the pieces of an image split over several requests.

    Attributes:
        protocol: the upload protocol (``x``: INIT declares ``total_bytes``, APPENDs carry
            ``segment_index`` 0, 1, ..., FINALIZE closes).
        max_total_bytes: the largest declared image held; larger ones pass untouched.
        max_segments: the most segments held for one image.
        hold_s: the seconds the segments of one image may be held, from the first.
    """

    protocol: str
    max_total_bytes: int = 20 * 2**20
    max_segments: int = 32
    hold_s: float = 120.0


@dataclass(frozen=True)
class SiteRule:
    """One site's rule. See the shipped ``grasp_sdk/policy.yaml`` for the meaning of each field."""

    name: str
    hosts: tuple[HostPattern, ...]
    paths: tuple[PathPattern, ...] = ()
    methods: frozenset[str] = frozenset({"POST", "PUT", "PATCH"})
    formats: frozenset[str] = frozenset(FORMATS)
    fields: tuple[str, ...] = ()
    preset: str = "balanced"
    size_mode: SizeMode = "any"
    on_no_face: OnNoFace = "skip"
    on_failure: OnFailure = "pass"
    site_pipeline: SitePipeline | None = None
    max_bytes: int = 20 * 2**20
    length_headers: tuple[str, ...] = ()
    signed: bool = False
    chunked_upload: ChunkedUpload | None = None
    enabled: bool = True

    def matches(self, method: str, host: str, path: str) -> bool:
        """Whether a request to ``host`` + ``path`` (no query) with ``method`` is this site's."""
        return (
            method.upper() in self.methods
            and any(h.matches(host) for h in self.hosts)
            and (not self.paths or any(p.matches(path) for p in self.paths))
        )

    def options(self, *, exact_size: bool = False) -> ProtectOptions:
        """The protection options for this site's images.

        Args:
            exact_size: force ``size_mode=exact`` (a signature covers the body length).
        """
        pipeline = self.site_pipeline or SitePipeline()
        return ProtectOptions(
            preset=self.preset,
            size_mode="exact" if exact_size else self.size_mode,
            on_no_face=self.on_no_face,
            site=self.name,
            # The defense must survive the harshest re-encode the site applies.
            site_jpeg_quality=pipeline.jpeg_quality[0] if pipeline.jpeg_quality else None,
            site_max_side=pipeline.max_side,
            site_blur_sigma=pipeline.blur_sigma,
        )


@dataclass(frozen=True)
class Policy:
    """The ordered site rules of one policy file.

    Attributes:
        sites: every rule, enabled or not, in file order.
        source: where the policy came from, for messages.
    """

    sites: tuple[SiteRule, ...]
    source: str = "<string>"

    def match(self, method: str, url: str) -> SiteRule | None:
        """The first enabled rule matching ``method`` and ``url``, or None."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        path = parts.path or "/"
        return next((s for s in self.sites if s.enabled and s.matches(method, host, path)),
                    None)

    def get(self, name: str) -> SiteRule | None:
        """The rule named ``name`` (enabled or not), or None."""
        return next((s for s in self.sites if s.name == name), None)

    def allow_hosts(self) -> list[str]:
        """Regexes for mitmproxy's ``allow_hosts``: the hosts of every enabled rule.

        mitmproxy searches them in ``host:port``. Any-host patterns (``*``) contribute
        nothing, so that the proxy does not intercept every TLS connection: list an
        instance's host explicitly to have the proxy see its uploads.
        """
        seen: dict[str, None] = {}
        for site in self.sites:
            if site.enabled:
                for host in site.hosts:
                    if not host.any_host:
                        seen.setdefault(rf"^{host.regex}:\d+$")
        return list(seen)


# Package data may live in a zip: a file extracted for the process's lifetime, removed at exit
# (the importlib.resources recipe). An ordinary install yields the installed file itself.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


@functools.cache
def shipped_policy_path() -> Path:
    """The policy shipped with the SDK (package data), as a file on disk."""
    resource = importlib.resources.files("grasp_sdk").joinpath("policy.yaml")
    return _EXTRACTED.enter_context(importlib.resources.as_file(resource))


def default_policy_path(env: Mapping[str, str] | None = None) -> Path:
    """The policy file used when none is given: ``$GRASP_GUARD_POLICY``, else the shipped one.

    Args:
        env: the environment (default ``os.environ``).
    """
    value = (os.environ if env is None else env).get(POLICY_ENV, "").strip()
    return Path(value).expanduser() if value else shipped_policy_path()


def load_policy(path_or_text: str | os.PathLike[str] | None = None) -> Policy:
    """Load and validate a policy; raises PolicyError naming the file, site and field.

    Args:
        path_or_text: a path (``os.PathLike``, or a ``str`` without a newline), or the
            YAML text itself (a ``str`` with a newline); None: :func:`default_policy_path`.
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return parse_policy(path_or_text)
    path = default_policy_path() if path_or_text is None else Path(path_or_text)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror or exc}", source=str(path)) from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate policy YAML ``text``; raises PolicyError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", source=source) from None
    if not isinstance(doc, Mapping):
        raise PolicyError("the top level must be a mapping with 'sites'", source=source)
    unknown = set(doc) - {"version", "defaults", "sites"}
    if unknown:
        raise PolicyError(f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}",
                          source=source)
    if doc.get("version", 1) != 1:
        raise PolicyError(f"unsupported version {doc['version']!r} (expected 1)", source=source)
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise PolicyError("must be a mapping", source=source, site="defaults")
    for key in defaults:
        if key not in _FIELDS or key in _PER_SITE_ONLY:
            raise PolicyError("not a field allowed in defaults", source=source,
                              site="defaults", field=str(key))
        _parse_field(key, defaults[key], source, "defaults")
    sites = doc.get("sites")
    if not isinstance(sites, list) or not sites:
        raise PolicyError("'sites' must be a non-empty list", source=source)
    rules: list[SiteRule] = []
    for index, entry in enumerate(sites):
        rule = _parse_site(entry, defaults, source, index)
        if any(r.name == rule.name for r in rules):
            raise PolicyError("duplicate site name", source=source, site=rule.name, field="name")
        rules.append(rule)
    return Policy(tuple(rules), source)


def _parse_site(entry: Any, defaults: Mapping[str, Any], source: str, index: int) -> SiteRule:
    label = f"#{index + 1}"
    if not isinstance(entry, Mapping):
        raise PolicyError("a site must be a mapping", source=source, site=label)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError("a non-empty string is required", source=source, site=label,
                          field="name")
    if "hosts" not in entry:
        raise PolicyError("required", source=source, site=name, field="hosts")
    values: dict[str, Any] = {}
    for key, value in {**defaults, **entry}.items():
        if key not in _FIELDS:
            raise PolicyError("unknown field", source=source, site=name, field=str(key))
        values[key] = _parse_field(key, value, source, name)
    rule = SiteRule(**values)
    try:
        rule.options()
    except ValueError as exc:
        raise PolicyError(str(exc), source=source, site=name) from None
    return rule


def _parse_field(key: str, value: Any, source: str, site: str) -> Any:
    try:
        return _FIELDS[key](value)
    except (TypeError, ValueError) as exc:
        raise PolicyError(str(exc), source=source, site=site, field=key) from None


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)
    return parse


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(_string(v) for v in value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected an integer in {low}..{high}, got {value!r}")
        return value
    return parse


def _hosts(value: Any) -> tuple[HostPattern, ...]:
    hosts = _strings(value)
    if not hosts:
        raise ValueError("at least one host is required")
    return tuple(parse_host(h) for h in hosts)


def _methods(value: Any) -> frozenset[str]:
    methods = frozenset(m.upper() for m in _strings(value))
    if not methods:
        raise ValueError("at least one method is required")
    return methods


def _formats(value: Any) -> frozenset[str]:
    formats = frozenset(_choice(FORMATS)(f) for f in _strings(value))
    if not formats:
        raise ValueError("at least one format is required")
    return formats


def _pipeline(value: Any) -> SitePipeline | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {value!r}")
    unknown = set(value) - {"jpeg_quality", "max_side", "blur_sigma"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    quality = value.get("jpeg_quality")
    if quality is not None:
        parse_q = _int(1, 100)
        if isinstance(quality, list) and len(quality) == 2:
            low, high = parse_q(quality[0]), parse_q(quality[1])
            if low > high:
                raise ValueError(f"jpeg_quality range must be [low, high], got {quality}")
            quality = (low, high)
        else:
            quality = (parse_q(quality),) * 2
    max_side = value.get("max_side")
    sigma = value.get("blur_sigma")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                              or not 0 < sigma <= 10):
        raise ValueError(f"blur_sigma must be a number in (0, 10], got {sigma!r}")
    return SitePipeline(
        jpeg_quality=quality,
        max_side=None if max_side is None else _int(16, 65535)(max_side),
        blur_sigma=None if sigma is None else float(sigma),
    )


def _chunked(value: Any) -> ChunkedUpload | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {value!r}")
    unknown = set(value) - {"protocol", "max_total_bytes", "max_segments", "hold_s"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if "protocol" not in value:
        raise ValueError(f"protocol is required (one of {', '.join(CHUNKED_PROTOCOLS)})")
    hold_s = value.get("hold_s", ChunkedUpload.hold_s)
    if isinstance(hold_s, bool) or not isinstance(hold_s, (int, float)) or not 0 < hold_s <= 3600:
        raise ValueError(f"hold_s must be a number of seconds in (0, 3600], got {hold_s!r}")
    return ChunkedUpload(
        protocol=_choice(CHUNKED_PROTOCOLS)(value["protocol"]),
        max_total_bytes=_int(1, 2**40)(value.get("max_total_bytes", ChunkedUpload.max_total_bytes)),
        max_segments=_int(1, 1000)(value.get("max_segments", ChunkedUpload.max_segments)),
        hold_s=float(hold_s),
    )


_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _string,
    "enabled": _bool,
    "hosts": _hosts,
    "paths": lambda v: tuple(parse_path(p) for p in _strings(v)),
    "methods": _methods,
    "formats": _formats,
    "fields": _strings,
    "preset": _choice(PRESETS),
    "size_mode": _choice(SIZE_MODES),
    "on_no_face": _choice(ON_NO_FACE),
    "on_failure": _choice(ON_FAILURE),
    "site_pipeline": _pipeline,
    "max_bytes": _int(1, 2**40),
    "length_headers": _strings,
    "signed": _bool,
    "chunked_upload": _chunked,
}
_PER_SITE_ONLY = {"name", "hosts", "paths", "fields"}
