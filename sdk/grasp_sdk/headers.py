"""Request headers of an upload: read them, decide whether the body may change, fix them up.

Headers travel as an ordered list of ``(name, value)`` string pairs (duplicates and the
original spelling kept); bytes pairs are decoded as latin-1, which round-trips any byte.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from grasp_sdk import digest_fields
from grasp_sdk.checksums import DIGESTS
from grasp_sdk.stated_digests import Digests, DigestTokens, digest_tokens

Fields = tuple[tuple[str, str], ...]
HeaderInput = Mapping[str, str] | Iterable[tuple[bytes, bytes]] | Iterable[tuple[str, str]]

# Headers that say where in the file this body starts (Instagram rupload, Facebook Graph
# resumable upload, tus): a body that does not start at 0 is a piece of a file.
_OFFSET_HEADERS = ("offset", "file_offset", "upload-offset")
_AMZ_CHECKSUM = "x-amz-checksum-"
_AMZ_CHECKSUM_NOT_DIGESTS = {"x-amz-checksum-algorithm", "x-amz-checksum-type",
                             "x-amz-checksum-mode"}
# Digest headers whose format we do not rewrite: their presence leaves the upload alone
# (RFC 3230's Digest, obsoleted by RFC 9530's Content-Digest and Repr-Digest, which are;
# Azure Storage's CRC-64).
_UNSUPPORTED_DIGESTS = ("digest", "x-ms-content-crc64")
# A signature over any of these covers the body's bytes (or its digest).
_PAYLOAD_SIGNED = {"content-md5", "x-goog-hash", "digest", "upload-checksum",
                   "x-ms-content-crc64", "x-ms-content-md5", "x-ms-blob-content-md5",
                   *digest_fields.FIELDS}
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_FORM = "application/x-www-form-urlencoded"
_GOOG_HASH_ITEM = re.compile(r"([\w-]+)=([A-Za-z0-9+/]*=*)")
# tus's checksum extension: ``Upload-Checksum: sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=``.
_TUS_CHECKSUM = re.compile(r"(\s*)([A-Za-z0-9-]+)( +)([A-Za-z0-9+/]*=*)\s*")
_TUS_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256",
                   "sha-256": "sha256", "sha512": "sha512", "sha-512": "sha512"}
# The headers whose digests of the body fix_up recomputes.
_RECOMPUTED = {"content-md5", "x-goog-hash", "upload-checksum", *digest_fields.FIELDS}


def normalise(headers: HeaderInput) -> Fields:
    """Headers as ordered ``(name, value)`` string pairs.

    Accepts a mapping (a multidict's ``items()`` keeps duplicates) or an iterable of str or
    bytes pairs (mitmproxy's ``headers.fields``).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple(
        (k.decode("latin-1") if isinstance(k, bytes) else k,
         v.decode("latin-1") if isinstance(v, bytes) else v)
        for k, v in items
    )


def get(fields: Fields, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    lname = name.lower()
    return next((v for k, v in fields if k.lower() == lname), None)


def content_encoding(fields: Fields) -> str:
    """The body's codings, every ``Content-Encoding`` field joined (a client may send the
    header twice), then the transfer codings but ``chunked`` (``Transfer-Encoding: gzip,
    chunked``: the body arrives dechunked, still compressed), ``identity`` left out:
    ``"identity"`` when there are none."""
    codings = [c.strip().lower() for name in ("content-encoding", "transfer-encoding")
               for k, v in fields if k.lower() == name for c in v.split(",")]
    return ", ".join(c for c in codings if c not in ("", "identity", "chunked")) or "identity"


@dataclass(frozen=True)
class BodyConstraints:
    """What the headers allow done to the body.

    Attributes:
        reason: why the body must be left untouched, or None if it may change.
        length_locked: the body may change only if its length does not (a signature covers
            ``Content-Length``, or a tus upload or a resumable session fixed it when it was
            created).
    """

    reason: str | None
    length_locked: bool = False


def constraints(fields: Fields, url: str, body: bytes | None = None) -> BodyConstraints:
    """Decide from the headers (and a presigned URL's query) whether the body may change.

    Args:
        fields: the request headers.
        url: the request URL (a presigned URL's query may sign headers).
        body: the body as sent; when given, the checksums :func:`fix_up` recomputes
            (``Content-MD5``, ``x-amz-checksum-*``, ``x-goog-hash``, ``Content-Digest``,
            ``Repr-Digest``, tus's ``Upload-Checksum``) must match it (else they describe
            other bytes, and cannot be recomputed).
    """
    encoding = content_encoding(fields)
    if encoding != "identity":
        return BodyConstraints(f"body is content-encoded ({encoding})")
    for name in _OFFSET_HEADERS:
        offset = get(fields, name)
        if offset is not None and offset.strip() != "0":
            return BodyConstraints(f"resumed upload ({name}: {offset.strip()})")
    content_range = get(fields, "content-range")
    if content_range is not None and _full_range_length(content_range) is None:
        return BodyConstraints(f"partial upload (Content-Range: {content_range})")
    for name, value in fields:
        lname = name.lower()
        if lname in _UNSUPPORTED_DIGESTS:
            return BodyConstraints(f"{name} header cannot be recomputed")
        if lname in digest_fields.FIELDS:
            problem = digest_fields.problem(value, body)
            if problem:
                return BodyConstraints(f"{name} header cannot be recomputed: {problem}")
        if (lname.startswith(_AMZ_CHECKSUM) and lname not in _AMZ_CHECKSUM_NOT_DIGESTS
                and lname[len(_AMZ_CHECKSUM):] not in DIGESTS):
            return BodyConstraints(f"{name} header cannot be recomputed")
        if lname == "x-goog-hash" and any(
                alg.lower() not in DIGESTS for alg, _ in _GOOG_HASH_ITEM.findall(value)):
            return BodyConstraints(f"x-goog-hash {value!r} cannot be recomputed")
        if lname == "upload-checksum":
            problem = _tus_checksum_problem(value, body)
            if problem:
                return BodyConstraints(f"{name} header cannot be recomputed: {problem}")
        if body is not None and not _checksum_of(lname, value, body):
            return BodyConstraints(f"{name} header cannot be recomputed: it does not match "
                                   "the body as sent (a checksum of other bytes, such as one "
                                   "part's)")
    limits = _signature_constraints(fields, url)
    if limits.reason is None and body is not None:
        stated = _stated_digest(fields, url, body)
        if stated:
            return BodyConstraints(stated)
    if limits.reason is None and content_range is not None:
        # a resumable session's one PUT: the session fixed the total when it was opened
        return BodyConstraints(None, length_locked=True)
    return limits


def _checksum_of(lname: str, value: str, body: bytes) -> bool:
    """Whether a ``Content-MD5``, ``x-amz-checksum-*`` or ``x-goog-hash`` value states the
    digests of ``body`` (True for any other header)."""
    if lname == "content-md5":
        return value.strip() == DIGESTS["md5"](body)
    if lname == "x-goog-hash":
        return all(digest == DIGESTS[alg.lower()](body)
                   for alg, digest in _GOOG_HASH_ITEM.findall(value))
    if lname.startswith(_AMZ_CHECKSUM) and lname not in _AMZ_CHECKSUM_NOT_DIGESTS:
        return value.strip() == DIGESTS[lname[len(_AMZ_CHECKSUM):]](body)
    return True


def _is_recomputed(lname: str) -> bool:
    return lname in _RECOMPUTED or (lname.startswith(_AMZ_CHECKSUM)
                                    and lname not in _AMZ_CHECKSUM_NOT_DIGESTS)


def unrecomputed_tokens(fields: Fields, url: str) -> DigestTokens:
    """The digest-length tokens of the URL and of the header values :func:`fix_up` leaves
    as they are."""
    values = [v for k, v in fields if not _is_recomputed(k.lower())]
    return digest_tokens(_utf8(text) for text in [url, *values])


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _stated_digest(fields: Fields, url: str, body: bytes) -> str | None:
    """Why the body may not change if a header or the URL states its digest in a form
    :func:`fix_up` does not recompute (the site would refuse the new body), else None."""
    digests = Digests(body)
    for name, text in [*((k, v) for k, v in fields if not _is_recomputed(k.lower())),
                       ("the URL", url)]:
        tokens = digest_tokens([_utf8(text)])
        algorithm = digests.stated_in(tokens) if tokens else None
        if algorithm:
            return f"{name} states the body's {algorithm} digest, which cannot be recomputed"
    return None


def _tus_digest(algorithm: str, body: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, body).digest()).decode("ascii")


def _tus_checksum_problem(value: str, body: bytes | None) -> str | None:
    """Why a tus ``Upload-Checksum`` value cannot be carried over to a new body, or None."""
    match = _TUS_CHECKSUM.fullmatch(value)
    if match is None:
        return f"{value!r} does not parse"
    algorithm = _TUS_ALGORITHMS.get(match.group(2).lower())
    if algorithm is None:
        return f"algorithm {match.group(2)!r} is not recomputed"
    if body is not None and _tus_digest(algorithm, body) != match.group(4):
        return "it does not match the body as sent"
    return None


def _signature_constraints(fields: Fields, url: str) -> BodyConstraints:
    query = [(k.lower(), v) for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
    # A presigned URL carries in its query what a signed request carries in its headers.
    for name, value in [*((k.lower(), v) for k, v in fields), *query]:
        if name in ("x-amz-content-sha256", "x-goog-content-sha256") and (
                _HEX_SHA256.fullmatch(value.strip())
                or value.strip().upper().startswith("STREAMING-")):
            return BodyConstraints(f"a signature covers the body ({name}: {value.strip()[:16]}…)")
    for name, _ in query:
        if name.startswith(_AMZ_CHECKSUM) and name not in _AMZ_CHECKSUM_NOT_DIGESTS:
            return BodyConstraints(f"the signed URL pins the body's checksum ({name})")
    signed: set[str] = set()
    authorization = get(fields, "authorization") or ""
    keys = {name for name, _ in query}
    scheme = authorization.upper()
    # OAuth 1.0a signs with oauth_signature; an OAuth 2 token may come as "OAuth <token>" too
    oauth1 = scheme.startswith("OAUTH ") and "oauth_signature=" in authorization.lower()
    if oauth1 and ("oauth_body_hash" in authorization.lower()
                   or (get(fields, "content-type") or "").lower().startswith(_FORM)):
        return BodyConstraints("an OAuth 1.0a signature covers the body (its form fields or "
                               "its hash)")
    if scheme.startswith(("AWS4-", "GOOG4-")):
        match = _SIGNED_HEADERS.search(authorization)
        if match:
            signed.update(match.group(1).lower().split(";"))
    elif scheme.startswith(("SHAREDKEY ", "SHAREDKEYLITE ")):
        # Azure Storage's Shared Key signs Content-MD5 and every x-ms-* header sent; its
        # full form (not Lite) signs Content-Length too.
        signed.update(k.lower() for k, _ in fields
                      if k.lower() == "content-md5" or k.lower().startswith("x-ms-"))
        if scheme.startswith("SHAREDKEY "):
            signed.add("content-length")
    elif get(fields, "content-md5") is not None:
        if authorization.upper().startswith("AWS "):
            return BodyConstraints("an AWS V2 signature covers Content-MD5")
        if "signature" in keys and keys & {"awsaccesskeyid", "googleaccessid"}:
            return BodyConstraints("a V2 signed URL covers Content-MD5")
    for key, value in query:
        if key in ("x-amz-signedheaders", "x-goog-signedheaders"):
            signed.update(value.lower().split(";"))
    covered = sorted(h for h in signed if h in _PAYLOAD_SIGNED or h.startswith(_AMZ_CHECKSUM))
    if covered:
        return BodyConstraints(f"a signature covers {', '.join(covered)}")
    signature_input = (get(fields, "signature-input") or "").lower()
    if any(f in signature_input for f in (*digest_fields.FIELDS, "content-length")):
        return BodyConstraints("an HTTP message signature covers the body's digest or length")
    # SigV4 signs the payload's hash: S3 names it (or UNSIGNED-PAYLOAD) in its header, which
    # the checks above read; every other AWS service hashes the body itself.
    if scheme.startswith("AWS4-") and get(fields, "x-amz-content-sha256") is None:
        return BodyConstraints("an AWS SigV4 signature covers the body's hash")
    # tus fixed the upload's length when it was created: a PATCH at offset 0 keeps it.
    return BodyConstraints(None, length_locked="content-length" in signed
                           or get(fields, "tus-resumable") is not None)


def _full_range_length(content_range: str) -> int | None:
    """The total length if ``Content-Range`` spans the whole file, else None."""
    match = _CONTENT_RANGE.match(content_range.strip())
    if not match or match.group(3) == "*":
        return None
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    return total if first == 0 and last == total - 1 else None


def fix_up(fields: Fields, body: bytes, length_headers: Iterable[str] = ()) -> Fields:
    """Headers for the rewritten ``body``: lengths and checksums recomputed, the rest as is.

    Only the values of headers already present change; none is added or removed. Call
    :func:`constraints` first: it rules out headers that cannot be recomputed.

    Args:
        fields: the original headers.
        body: the new body.
        length_headers: site headers that declare the body length (e.g. ``X-Entity-Length``).
    """
    lengths = {"content-length", *(h.lower() for h in length_headers)}
    size = str(len(body))
    digests: dict[str, str] = {}

    def digest(alg: str) -> str:
        if alg not in digests:
            digests[alg] = DIGESTS[alg](body)
        return digests[alg]

    fixed = []
    for name, value in fields:
        lname = name.lower()
        if lname in lengths:
            value = size
        elif lname == "content-md5":
            value = digest("md5")
        elif lname.startswith(_AMZ_CHECKSUM) and lname not in _AMZ_CHECKSUM_NOT_DIGESTS:
            value = digest(lname[len(_AMZ_CHECKSUM):])
        elif lname == "upload-checksum":
            value = _TUS_CHECKSUM.sub(lambda m: m.expand(r"\1\2\3") + _tus_digest(
                _TUS_ALGORITHMS[m.group(2).lower()], body), value)
        elif lname == "x-goog-hash":
            value = _GOOG_HASH_ITEM.sub(
                lambda m: f"{m.group(1)}={digest(m.group(1).lower())}", value)
        elif lname in digest_fields.FIELDS:
            value = digest_fields.recompute(value, body)
        elif lname == "content-range":
            value = f"bytes 0-{len(body) - 1}/{len(body)}"
        fixed.append((name, value))
    return tuple(fixed)
