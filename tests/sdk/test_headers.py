"""Which headers let a body change, and how they are fixed up after it does."""

from __future__ import annotations

import base64
import hashlib

import pytest
from grasp_sdk import headers as hdrs
from grasp_sdk.checksums import crc32c

SHA = hashlib.sha256(b"x").hexdigest()
B64_SHA256_X = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
B64_SHA512_X = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
SIGV4 = ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, "
         "SignedHeaders={}, Signature=abc")
URL = "https://bucket.s3.amazonaws.com/key"


def test_normalise_accepts_bytes_pairs_and_mappings() -> None:
    assert hdrs.normalise([(b"A", b"\xe9"), (b"a", b"2")]) == (("A", "é"), ("a", "2"))
    assert hdrs.normalise({"Content-Type": "x"}) == (("Content-Type", "x"),)


@pytest.mark.parametrize(("fields", "url", "reason"), [
    ([], URL, None),
    ([("Offset", "0")], URL, None),
    ([("Offset", "1024")], URL, "resumed upload"),
    ([("file_offset", "5")], URL, "resumed upload"),
    ([("Upload-Offset", "7")], URL, "resumed upload"),
    ([("Content-Range", "bytes 0-9/10")], URL, None),
    ([("Content-Range", "bytes 0-9/20")], URL, "partial upload"),
    ([("Content-Range", "bytes 10-19/20")], URL, "partial upload"),
    ([("Content-Encoding", "gzip")], URL, "content-encoded"),
    ([("x-amz-content-sha256", SHA)], URL, "signature covers the body"),
    ([("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], URL, "signature"),
    ([("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
      ("Authorization", SIGV4.format("host;x-amz-content-sha256;x-amz-date"))], URL, None),
    ([("Content-MD5", "x"), ("Authorization", SIGV4.format("content-md5;host"))], URL,
     "signature covers content-md5"),
    ([("Authorization", SIGV4.format("host;x-amz-checksum-crc32"))], URL,
     "x-amz-checksum-crc32"),
    ([], URL + "?X-Amz-SignedHeaders=content-md5%3Bhost&X-Amz-Signature=1", "content-md5"),
    ([], URL + "?X-Goog-SignedHeaders=host;x-goog-hash", "x-goog-hash"),
    ([("Content-MD5", "x"), ("Authorization", "AWS AKID:sig")], URL, "AWS V2"),
    ([("Content-MD5", "x")], URL + "?AWSAccessKeyId=AKID&Expires=9&Signature=s%3D",
     "V2 signed URL covers Content-MD5"),
    ([("Content-MD5", "x")], URL + "?GoogleAccessId=a%40b&Expires=9&Signature=s",
     "V2 signed URL covers Content-MD5"),
    ([], URL + "?AWSAccessKeyId=AKID&Expires=9&Signature=s%3D", None),
    ([], URL + "?X-Amz-Signature=1&x-amz-checksum-crc32=AAAAAA%3D%3D"
     "&x-amz-sdk-checksum-algorithm=CRC32", "signed URL pins the body's checksum"),
    ([], URL + "?X-Amz-Signature=1&x-amz-sdk-checksum-algorithm=CRC32", None),
    ([], URL + f"?X-Amz-Content-Sha256={SHA}", "signature covers the body"),
    ([("Signature-Input", 'sig1=("content-digest" "@method")')], URL, "message signature"),
    ([("x-amz-checksum-xxhash64", "x")], URL, "cannot be recomputed"),
    ([("Content-Digest", "sha-256=:x:")], URL, "cannot be recomputed: malformed"),
    ([("Content-Digest", f"sha-256=:{B64_SHA256_X}:")], URL, None),
    ([("Repr-Digest", f"sha-512=:{B64_SHA512_X}:, sha-256=:{B64_SHA256_X}:")], URL, None),
    ([("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")], URL, "unsupported algorithm md5"),
    ([("Repr-Digest", f"sha-256=:{B64_SHA256_X}:, adler=:AAAAAA==:")], URL,
     "Repr-Digest header cannot be recomputed: unsupported algorithm adler"),
    ([("Content-Digest", "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:")], URL,
     "does not match the body"),
    ([("Digest", f"SHA-256={B64_SHA256_X}")], URL, "Digest header cannot be recomputed"),
    ([("Signature-Input", 'sig1=("repr-digest" "@method")')], URL, "message signature"),
    ([("Authorization", SIGV4.format("content-digest;host"))], URL,
     "signature covers content-digest"),
    ([("x-goog-hash", "crc32c=AAAAAA==,sha512=x")], URL, "cannot be recomputed"),
    ([("x-amz-checksum-crc32c", "x"), ("x-amz-checksum-type", "FULL_OBJECT")], URL, None),
])
def test_constraints(fields: list[tuple[str, str]], url: str, reason: str | None) -> None:
    found = hdrs.constraints(tuple(fields), url, b"x").reason
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_signed_content_length_locks_the_length() -> None:
    signed = hdrs.constraints((("Authorization", SIGV4.format("content-length;host")),
                               ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")), URL)
    assert signed.reason is None and signed.length_locked
    presigned = hdrs.constraints((), URL + "?X-Goog-SignedHeaders=content-length%3Bhost")
    assert presigned.length_locked
    assert not hdrs.constraints((), URL).length_locked


def test_fix_up_recomputes_lengths_and_checksums() -> None:
    body = b"new body bytes"
    fields = (
        ("Host", "h"), ("Content-Length", "3"), ("X-Entity-Length", "3"), ("Offset", "0"),
        ("Content-MD5", "old"), ("x-amz-checksum-sha256", "old"),
        ("x-amz-checksum-crc32c", "old"), ("x-amz-checksum-algorithm", "CRC32C"),
        ("x-goog-hash", "crc32c=old==, md5=old=="), ("Content-Range", "bytes 0-2/3"),
        ("Content-Digest", "sha-256=:b2xk:, sha-512=:b2xk:"), ("Repr-Digest", "sha-256=:b2xk:"),
    )
    fixed = dict(hdrs.fix_up(fields, body, ["x-entity-length"]))

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    crc = b64(crc32c(body).to_bytes(4, "big"))
    assert fixed == {
        "Host": "h", "Content-Length": "14", "X-Entity-Length": "14", "Offset": "0",
        "Content-MD5": b64(hashlib.md5(body).digest()),
        "x-amz-checksum-sha256": b64(hashlib.sha256(body).digest()),
        "x-amz-checksum-crc32c": crc, "x-amz-checksum-algorithm": "CRC32C",
        "x-goog-hash": f"crc32c={crc}, md5={b64(hashlib.md5(body).digest())}",
        "Content-Range": "bytes 0-13/14",
        "Content-Digest": f"sha-256=:{b64(hashlib.sha256(body).digest())}:, "
                          f"sha-512=:{b64(hashlib.sha512(body).digest())}:",
        "Repr-Digest": f"sha-256=:{b64(hashlib.sha256(body).digest())}:",
    }


def test_fix_up_keeps_order_duplicates_and_adds_nothing() -> None:
    fields = (("B", "1"), ("a", "2"), ("B", "3"))
    assert hdrs.fix_up(fields, b"xyz") == fields
