"""Which headers let a body change, and how they are fixed up after it does."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

import pytest
from grasp_sdk import headers as hdrs
from grasp_sdk.checksums import crc32c

SHA = hashlib.sha256(b"x").hexdigest()
B64_SHA256_X = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
B64_SHA512_X = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
B64_MD5_X = base64.b64encode(hashlib.md5(b"x").digest()).decode()
B64_CRC32C_X = base64.b64encode(crc32c(b"x").to_bytes(4, "big")).decode()
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
    ([("Content-MD5", B64_MD5_X), ("Authorization", SIGV4.format("content-md5;host"))], URL,
     "signature covers content-md5"),
    ([("Authorization", SIGV4.format("host;x-amz-checksum-crc32"))], URL,
     "x-amz-checksum-crc32"),
    ([], URL + "?X-Amz-SignedHeaders=content-md5%3Bhost&X-Amz-Signature=1", "content-md5"),
    ([], URL + "?X-Goog-SignedHeaders=host;x-goog-hash", "x-goog-hash"),
    ([("Content-MD5", B64_MD5_X), ("Authorization", "AWS AKID:sig")], URL, "AWS V2"),
    ([("Content-MD5", B64_MD5_X)], URL + "?AWSAccessKeyId=AKID&Expires=9&Signature=s%3D",
     "V2 signed URL covers Content-MD5"),
    ([("Content-MD5", B64_MD5_X)], URL + "?GoogleAccessId=a%40b&Expires=9&Signature=s",
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
    ([("x-amz-checksum-crc32c", B64_CRC32C_X), ("x-amz-checksum-type", "FULL_OBJECT")], URL,
     None),
])
def test_constraints(fields: list[tuple[str, str]], url: str, reason: str | None) -> None:
    found = hdrs.constraints(tuple(fields), url, b"x").reason
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_a_whole_file_content_range_locks_the_length() -> None:
    # GCS, Drive and Graph resumable sessions fix the total when they are opened
    limits = hdrs.constraints((("Content-Range", "bytes 0-9/10"),), URL, b"0123456789")
    assert limits.reason is None and limits.length_locked
    assert not hdrs.constraints((), URL, b"0123456789").length_locked


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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_a_tus_upload_checksum_is_recomputed_for_the_new_body() -> None:
    # tus's checksum extension: the server answers 460 to a PATCH whose body does not match
    sent, body = b"x", b"new body bytes"
    fields = (("Tus-Resumable", "1.0.0"), ("Upload-Offset", "0"),
              ("Upload-Checksum", f"sha1 {_b64(hashlib.sha1(sent).digest())}"))
    limits = hdrs.constraints(fields, URL, sent)
    assert limits.reason is None and limits.length_locked
    fixed = dict(hdrs.fix_up(fields, body))
    assert fixed["Upload-Checksum"] == f"sha1 {_b64(hashlib.sha1(body).digest())}"
    sha256 = (("Upload-Checksum", f"SHA256 {_b64(hashlib.sha256(sent).digest())}"),)
    assert hdrs.constraints(sha256, URL, sent).reason is None
    assert dict(hdrs.fix_up(sha256, body))["Upload-Checksum"] == \
        f"SHA256 {_b64(hashlib.sha256(body).digest())}"


@pytest.mark.parametrize(("value", "problem"), [
    (f"sha1 {_b64(hashlib.sha1(b'other').digest())}", "does not match the body"),
    (f"crc32 {_b64(hashlib.md5(b'x').digest()[:4])}", "algorithm 'crc32'"),
    ("sha1", "does not parse"),
])
def test_a_tus_upload_checksum_that_cannot_be_carried_over_leaves_the_body(
        value: str, problem: str) -> None:
    reason = hdrs.constraints((("Upload-Checksum", value),), URL, b"x").reason
    assert reason is not None and problem in reason


@pytest.mark.parametrize("field", [
    ("Content-MD5", _b64(hashlib.md5(b"image").digest())),
    ("x-amz-checksum-crc32c", _b64(crc32c(b"image").to_bytes(4, "big"))),
    ("X-Goog-Hash", (f"crc32c={_b64(crc32c(b'image').to_bytes(4, 'big'))},"
                    f"md5={_b64(hashlib.md5(b'image').digest())}")),
])  # fmt: skip
def test_a_recomputed_checksum_of_other_bytes_leaves_the_body(field: tuple[str, str]) -> None:
    # a GCS multipart/related upload stating its image part's hashes: the new body's would
    # be wrong, and the new image's cannot be told from the headers alone
    reason = hdrs.constraints((field,), URL, b"x").reason
    assert reason is not None and "does not match the body as sent" in reason
    assert hdrs.constraints((field,), URL, b"image").reason is None


def test_azure_shared_key_signs_content_md5_and_the_length() -> None:
    key = ("Authorization", "SharedKey account:c2lnbmF0dXJl")
    assert not hdrs.constraints((key,), URL).reason
    assert hdrs.constraints((key,), URL).length_locked
    lite = hdrs.constraints((("Authorization", "SharedKeyLite account:c2ln"),), URL)
    assert lite.reason is None and not lite.length_locked
    signed = hdrs.constraints((key, ("Content-MD5", _b64(hashlib.md5(b"x").digest()))), URL)
    assert signed.reason is not None and "content-md5" in signed.reason
    crc64 = hdrs.constraints((("x-ms-content-crc64", "AAAAAAAAAAA="),), URL, b"x").reason
    assert crc64 is not None and "cannot be recomputed" in crc64


@pytest.mark.parametrize(("fields", "url", "named"), [
    ([("X-File-Sha256", hashlib.sha256(b"x").hexdigest())], URL, "X-File-Sha256"),
    ([("X-Upload-Meta", f'{{"md5Hash": "{_b64(hashlib.md5(b"x").digest())}"}}')], URL,
     "X-Upload-Meta"),
    ([], URL + f"?checksum={hashlib.sha1(b'x').hexdigest()}", "the URL"),
    ([], f"https://h/up/{hashlib.md5(b'x').hexdigest().upper()}", "the URL"),
    ([], URL + "?md5=" + quote(_b64(hashlib.md5(b"x").digest()), safe=""), "the URL"),
])
def test_a_digest_of_the_body_stated_where_it_is_not_recomputed_leaves_the_body(
        fields: list[tuple[str, str]], url: str, named: str) -> None:
    reason = hdrs.constraints(tuple(fields), url, b"x").reason
    assert reason is not None and reason.startswith(named) and "cannot be recomputed" in reason


def test_other_digests_and_recomputed_headers_leave_the_body_free() -> None:
    fields = (("X-File-Sha256", hashlib.sha256(b"y").hexdigest()),
              ("Content-MD5", _b64(hashlib.md5(b"x").digest())),
              ("x-amz-checksum-sha256", _b64(hashlib.sha256(b"x").digest())),
              ("X-Request-Id", "deadbeef"), ("X-Kind", "avatar upload camera"))
    assert hdrs.constraints(fields, URL + "?id=0123456789abcdef0123456789abcdef", b"x").reason \
        is None


def test_a_header_value_past_latin_1_is_read_not_raised_on() -> None:
    # a caller's dict may hold any text (a file name): constraints reads it, as before
    fields = (("X-File-Name", "写真.jpg"), ("X-Sum", "ok"))
    assert hdrs.constraints(fields, URL + "?name=写真", b"x").reason is None
