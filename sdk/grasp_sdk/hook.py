"""The upload hook: protect the images inside one HTTP request, or leave it untouched.

``rewrite_upload`` returns either the rewritten request (every image protected, headers
fixed up) or the original one with the reason it was left alone; when an image that should
be protected cannot be, it raises :class:`RewriteError` and the caller applies the site's
``on_failure``. On a ``block`` site, a body that carries an image the hook cannot rewrite
(signed, too big, malformed, encoded, a piece of a split upload, an image where the policy
does not look) raises :class:`UnprotectableUpload` rather than going as it is. A request is
never half-rewritten. ``rewrite_upload_sync`` does the same for synchronous callers, with a
blocking ``protect``.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

from grasp_sdk import headers as hdrs
from grasp_sdk import multipart
from grasp_sdk.base64_fields import find_form_images, find_json_images
from grasp_sdk.cache import ProtectCache
from grasp_sdk.errors import RewriteError, UnprotectableUpload
from grasp_sdk.options import ProtectOptions
from grasp_sdk.policy import Policy, SiteRule
from grasp_sdk.result import ProtectFn, ProtectResult, SyncProtectFn
from grasp_sdk.sniff import carries_image, image_type, is_complete
from grasp_sdk.splice import Edit, ImageSlot, MalformedBody, PinnedBody, apply_edits
from grasp_sdk.stated_digests import Digests, DigestTokens, digest_tokens

logger = logging.getLogger(__name__)

_INFLATED = frozenset({"gzip", "x-gzip", "deflate"})  # zlib reads either header (wbits + 32)


@dataclass(frozen=True)
class ImageReport:
    """What happened to one image of an upload.

    Attributes:
        location: where it was in the body (``multipart part 'media'``, ``body``, ...).
        media_type: its sniffed type.
        original_bytes: its size before.
        protected_bytes: its size after.
        cached: whether the result came from the cache rather than a new service call.
        report: the service's report for it.
    """

    location: str
    media_type: str
    original_bytes: int
    protected_bytes: int
    cached: bool
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadRewrite:
    """The outcome of :func:`rewrite_upload`.

    A proxy applies a changed one with, e.g. in mitmproxy,
    ``flow.request.headers = Headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v
    in rw.headers])`` and ``flow.request.raw_content = rw.body``.

    Attributes:
        headers: the request headers, ``(name, value)`` str pairs (latin-1 for bytes) in
            their original order; only the values of length and checksum headers change.
        body: the request body.
        changed: whether ``headers``/``body`` differ from the original.
        images: one report per image protected (empty when untouched before protecting).
        reason: what was done, or why the request was left untouched.
        site: the name of the matching policy site, if any.
    """

    headers: hdrs.Fields
    body: bytes
    changed: bool
    images: tuple[ImageReport, ...]
    reason: str
    site: str | None = None


class _LeaveAlone(Exception):
    """Internal: the request is left untouched for the reason in ``args[0]``."""


class _CannotRewrite(_LeaveAlone):
    """Internal: the request may carry a photo, and it cannot be rewritten (signed, too big,
    malformed, encoded, a piece of a split upload, a format or field the site's policy leaves
    out); ``why`` says so where the reason to leave it alone does not."""

    def __init__(self, reason: str, why: str | None = None) -> None:
        super().__init__(reason)
        self.why = why or reason


async def rewrite_upload(
    method: str,
    url: str,
    headers: hdrs.HeaderInput,
    body: bytes,
    policy: Policy,
    protect: ProtectFn,
    *,
    cache: ProtectCache | None = None,
) -> UploadRewrite:
    """Protect the images of one request per ``policy``.

    Args:
        method: the HTTP method.
        url: the full request URL (the host and path select the policy site).
        headers: the request headers: a (multi)mapping or ``(name, value)`` pairs, str or
            bytes (pass mitmproxy's ``headers.fields`` to keep duplicates).
        body: the whole request body.
        policy: the site policy.
        protect: protects one image (``GraspClient.protect`` or a stand-in).
        cache: an LRU that saves a retried upload from being protected twice.

    Returns:
        The rewritten request, or the original one with the reason it was left alone.

    Raises:
        RewriteError: an image that should be protected could not be (a service error, a
            timeout, a result that breaks the size or format contract).
        UnprotectableUpload: on a ``block`` site, the body carries an image it cannot rewrite.
    """
    # Reading a large body (a JSON document of many strings, JSON inside JSON) takes a while
    # in pure Python: off the event loop, which a proxy's every other request shares.
    plan = await asyncio.to_thread(_plan, method, url, headers, body, policy)
    if isinstance(plan, UploadRewrite):
        return plan
    outcomes = await asyncio.gather(
        *(_protect_one(slot, plan.options_for(slot), _checked(plan.rule, slot, protect), cache)
          for slot in plan.slots),
        return_exceptions=True,
    )
    results: list[tuple[ProtectResult, bool]] = []
    for slot, outcome in zip(plan.slots, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception) or isinstance(outcome, RewriteError):
                raise outcome
            raise _failed(plan.rule, slot, outcome) from outcome
        results.append(outcome)
    # Splicing and checksums of a large body take a while in pure Python (CRC-32C): off the
    # event loop.
    return await asyncio.to_thread(_finish, plan, results)


def rewrite_upload_sync(
    method: str,
    url: str,
    headers: hdrs.HeaderInput,
    body: bytes,
    policy: Policy,
    protect: SyncProtectFn,
    *,
    cache: ProtectCache | None = None,
) -> UploadRewrite:
    """Blocking :func:`rewrite_upload`, for synchronous HTTP clients.

    Takes the same arguments, but ``protect`` blocks (``SyncGraspClient.protect`` or a
    stand-in). The images of one request are protected one after another, and the first
    failure ends the rewrite.
    """
    plan = _plan(method, url, headers, body, policy)
    if isinstance(plan, UploadRewrite):
        return plan
    results: list[tuple[ProtectResult, bool]] = []
    for slot in plan.slots:
        checked = _checked_sync(plan.rule, slot, protect)
        try:
            if cache is None:
                results.append((checked(slot.data, plan.options_for(slot)), False))
            else:
                results.append(cache.protect_sync(slot.data, plan.options_for(slot), checked))
        except RewriteError:
            raise
        except Exception as exc:
            raise _failed(plan.rule, slot, exc) from exc
    return _finish(plan, results)


@dataclass(frozen=True)
class _Plan:
    """A request whose images are to be protected: the site, the images, the options."""

    rule: SiteRule
    fields: hdrs.Fields
    body: bytes
    slots: list[ImageSlot]
    options: ProtectOptions
    length_locked: bool

    def options_for(self, slot: ImageSlot) -> ProtectOptions:
        """The options for one image: ``size_mode=exact`` where its slot needs it."""
        return replace(self.options, size_mode="exact") if slot.exact_size else self.options


def _plan(method: str, url: str, headers: hdrs.HeaderInput, body: bytes,
          policy: Policy) -> _Plan | UploadRewrite:
    """The images to protect, or the request untouched with the reason it is left alone."""
    fields = hdrs.normalise(headers)
    rule = policy.match(method, url)
    if rule is None:
        return UploadRewrite(fields, body, False, (), "no policy site matches")
    try:
        return _find_work(rule, url, fields, body)
    except _LeaveAlone as untouched:
        reason = untouched.args[0]
        if (isinstance(untouched, _CannotRewrite) and rule.on_failure == "block"
                and _carries_image(fields, body, rule.max_bytes)):
            raise UnprotectableUpload(
                f"the image this body carries cannot be protected: {untouched.why}",
                site=rule.name, on_failure=rule.on_failure) from None
        logger.debug("%s %s left untouched: %s", method, url, reason)
        return UploadRewrite(fields, body, False, (), reason, rule.name)


def _carries_image(fields: hdrs.Fields, body: bytes, limit: int) -> bool:
    """Whether the body carries an image, as it is or as sent: a gzip or deflate body is
    inflated too (up to ``limit`` bytes; gzip or zlib by its header, whatever the label). One
    this cannot read (another encoding, a corrupt, cut or larger stream) is taken to carry
    one: on a ``block`` site, doubt refuses."""
    encoding = hdrs.content_encoding(fields)
    if carries_image(body):  # as it is, or a photo put after a compressed stream
        return True
    if encoding == "identity":
        return False
    if encoding not in _INFLATED:
        return True
    plain, rest = b"", body
    while True:  # a gzip body may be several members, each read by the server
        inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)
        try:
            plain += inflate.decompress(rest, limit + 1 - len(plain))
        except zlib.error:
            return True
        if len(plain) > limit or not inflate.eof:
            return True
        rest = inflate.unused_data.lstrip(b"\0")
        if not rest.startswith(b"\x1f\x8b"):
            return carries_image(plain)


def _find_work(rule: SiteRule, url: str, fields: hdrs.Fields, body: bytes) -> _Plan:
    if not body:
        raise _LeaveAlone("empty body")
    if rule.signed:
        raise _CannotRewrite("the policy marks this site's uploads as signed")
    if len(body) > rule.max_bytes:
        raise _CannotRewrite(f"body of {len(body)} bytes exceeds max_bytes {rule.max_bytes}")
    limits = hdrs.constraints(fields, url, body)
    if limits.reason:
        raise _CannotRewrite(limits.reason)
    for name in rule.length_headers:
        declared = hdrs.get(fields, name)
        if declared is not None and declared.strip() != str(len(body)):
            raise _CannotRewrite(f"{name} declares {declared.strip()} bytes and the body holds "
                              f"{len(body)} (a piece of a split upload?)")
    try:
        slots = _find_slots(rule, hdrs.get(fields, "content-type") or "", body)
    except MalformedBody as exc:
        raise _CannotRewrite(f"malformed body: {exc}") from None
    except PinnedBody as exc:
        raise _CannotRewrite(str(exc)) from None
    if not slots:  # none where the policy looks; one elsewhere still goes as it is
        raise _CannotRewrite("no image in the body",
                             "not in a field or format the site's policy protects")
    for slot in slots:
        if not is_complete(slot.data, slot.media_type):
            raise _CannotRewrite(f"{slot.location} holds an incomplete {slot.media_type} "
                              "(a piece of a chunked upload?)")
    outside = _outside(body, slots)
    stated = _digest_stated_beside(slots, body, outside, hdrs.unrecomputed_tokens(fields, url))
    if stated:
        raise _CannotRewrite(stated)
    if rule.on_failure == "block" and (outside is None or carries_image(outside)):
        raise _CannotRewrite("an image outside the fields and formats the site's policy "
                             "protects goes with the ones it does")
    return _Plan(rule, fields, body, slots, rule.options(exact_size=limits.length_locked),
                 limits.length_locked)


def _outside(body: bytes, slots: list[ImageSlot]) -> bytes | None:
    """``body`` with the images of ``slots`` cut out, or None if they cannot be."""
    try:
        return apply_edits(body, [edit for slot in slots for edit in slot.edits(b"")])
    except ValueError:  # MalformedBody among them
        return None


def _digest_stated_beside(slots: list[ImageSlot], body: bytes, outside: bytes | None,
                          elsewhere: DigestTokens) -> str | None:
    """Why the images may not change if the rest of the body, a header or the URL states
    the digest of one (a checksum the site would hold the protected image to), else None.
    A whole-body image's own digest in the headers is :func:`hdrs.constraints`' to find."""
    beside = digest_tokens([outside or b""])
    for slot in slots:
        tokens = beside | elsewhere if len(slot.data) != len(body) else beside
        algorithm = Digests(slot.data).stated_in(tokens) if tokens else None
        if algorithm:
            return (f"the upload states the {algorithm} digest of {slot.location} beside it, "
                    "which cannot be recomputed")
    return None


def _failed(rule: SiteRule, slot: ImageSlot, exc: Exception) -> RewriteError:
    return RewriteError(f"{slot.location}: {type(exc).__name__}: {exc}", site=rule.name,
                        on_failure=rule.on_failure)


def _finish(plan: _Plan, results: list[tuple[ProtectResult, bool]]) -> UploadRewrite:
    """Check the service's answers and put them in the body, headers fixed up."""
    rule, body = plan.rule, plan.body
    for slot, (result, _) in zip(plan.slots, results, strict=True):
        _check(rule, slot, result, plan.options_for(slot))  # a cache another caller filled, too
    reports = tuple(
        ImageReport(slot.location, slot.media_type, len(slot.data), len(result.data), cached,
                    result.report)
        for slot, (result, cached) in zip(plan.slots, results, strict=True)
    )
    edits: list[Edit] = []
    try:
        for slot, (result, _) in zip(plan.slots, results, strict=True):
            if result.data != slot.data:
                edits.extend(slot.edits(result.data))
        new_body = apply_edits(body, edits)
    except ValueError as exc:
        raise RewriteError(f"cannot put the protected image back: {exc}", site=rule.name,
                           on_failure=rule.on_failure) from exc
    if not edits:
        return UploadRewrite(plan.fields, body, False, reports,
                             "no image needed protection (no face found)", rule.name)
    if plan.length_locked and len(new_body) != len(body):
        raise RewriteError("a signature covers Content-Length and the protected body "
                           f"changed length ({len(body)} → {len(new_body)})",
                           site=rule.name, on_failure=rule.on_failure)
    new_fields = hdrs.fix_up(plan.fields, new_body, rule.length_headers)
    changed = sum(1 for slot, (r, _) in zip(plan.slots, results, strict=True)
                  if r.data != slot.data)
    reason = f"protected {changed} of {len(plan.slots)} image(s)"
    logger.info("site %s: %s", rule.name, reason)
    return UploadRewrite(new_fields, new_body, True, reports, reason, rule.name)


def _find_slots(rule: SiteRule, content_type: str, body: bytes) -> list[ImageSlot]:
    """The images of the body: the whole body if its bytes are an image (whatever its
    declared type: ``curl --data-binary`` labels a photo a form), else by the declared format."""
    media_type = image_type(body)
    if media_type is not None:
        _require(rule, "raw")
        return [ImageSlot("body", body, media_type, lambda new: [Edit(0, len(body), new)])]
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        _require(rule, "multipart")
        return multipart.find_images(body, content_type, rule.fields)
    if media == "application/x-www-form-urlencoded":
        _require(rule, "form_base64")
        return find_form_images(body, rule.fields)
    if media == "application/json" or media.endswith("+json"):
        _require(rule, "json_base64")
        return find_json_images(body, rule.fields)
    # Some clients post JSON as text/plain to avoid a CORS preflight.
    if body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"[") and "json_base64" in rule.formats:
        return find_json_images(body, rule.fields)
    raise _CannotRewrite("no image in the body",
                         f"the hook reads no {media or 'unlabelled'} body")


def _require(rule: SiteRule, fmt: str) -> None:
    if fmt not in rule.formats:
        raise _CannotRewrite(f"format {fmt} is not enabled for site {rule.name!r}")


async def _protect_one(slot: ImageSlot, options: ProtectOptions, protect: ProtectFn,
                       cache: ProtectCache | None) -> tuple[ProtectResult, bool]:
    if cache is None:
        return await protect(slot.data, options), False
    return await cache.protect(slot.data, options, protect)


def _checked(rule: SiteRule, slot: ImageSlot, protect: ProtectFn) -> ProtectFn:
    """``protect`` whose answers are checked (:func:`_check`) before a cache keeps them."""
    async def call(data: bytes, options: ProtectOptions) -> ProtectResult:
        result = await protect(data, options)
        _check(rule, slot, result, options)
        return result
    return call


def _checked_sync(rule: SiteRule, slot: ImageSlot, protect: SyncProtectFn) -> SyncProtectFn:
    """Blocking :func:`_checked`."""
    def call(data: bytes, options: ProtectOptions) -> ProtectResult:
        result = protect(data, options)
        _check(rule, slot, result, options)
        return result
    return call


def _check(rule: SiteRule, slot: ImageSlot, result: ProtectResult,
           options: ProtectOptions) -> None:
    """The service's answer must keep the format and the size contract, or nothing goes."""
    problem = None
    returned = image_type(result.data)
    if returned != slot.media_type:
        problem = f"the service returned {returned or 'a non-image'} for a {slot.media_type}"
    elif options.size_mode == "exact" and len(result.data) != len(slot.data):
        problem = f"size_mode=exact but {len(slot.data)} → {len(result.data)} bytes"
    elif options.size_mode == "max" and len(result.data) > len(slot.data):
        problem = f"size_mode=max but {len(slot.data)} → {len(result.data)} bytes"
    if problem:
        raise RewriteError(f"{slot.location}: {problem}", site=rule.name,
                           on_failure=rule.on_failure)
