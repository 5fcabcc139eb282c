"""The upload hook, per body format, with a fake protection call."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from grasp_sdk import (
    Policy,
    ProtectCache,
    ProtectResult,
    RewriteError,
    UnprotectableUpload,
    UploadRewrite,
    parse_policy,
    rewrite_upload,
    rewrite_upload_sync,
)
from grasp_sdk import headers as hdrs
from grasp_sdk.options import ProtectOptions

SIGV4 = ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, "
         "SignedHeaders={}, Signature=abc")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def multipart_body(*parts: tuple[str, bytes | str]) -> tuple[str, bytes]:
    form = aiohttp.FormData()
    for name, value in parts:
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.jpg", content_type="image/jpeg")
        else:
            form.add_field(name, value)
    payload = form()
    return payload.content_type, await payload.as_bytes()


async def test_raw_body_rewritten_with_headers_fixed(
        policy: Policy, fake_protect, jpeg: bytes,
) -> None:
    headers = [(b"Content-Type", b"image/jpeg"), (b"Content-Length", str(len(jpeg)).encode()),
               (b"X-Entity-Length", str(len(jpeg)).encode()), (b"Offset", b"0"),
               (b"Content-MD5", b64(hashlib.md5(jpeg).digest()).encode()),
               (b"x-amz-checksum-sha256", b64(hashlib.sha256(jpeg).digest()).encode())]
    out = await rewrite_upload("POST", "https://raw.test/rupload/fb_uploader_1", headers,
                               jpeg, policy, fake_protect)
    new = fake_protect.transform(jpeg)
    assert out.changed and out.body == new and out.site == "raw-site"
    assert dict(out.headers) == {
        "Content-Type": "image/jpeg", "Content-Length": str(len(new)),
        "X-Entity-Length": str(len(new)), "Offset": "0",
        "Content-MD5": b64(hashlib.md5(new).digest()),
        "x-amz-checksum-sha256": b64(hashlib.sha256(new).digest()),
    }
    (image,) = out.images
    assert (image.location, image.media_type, image.original_bytes, image.protected_bytes,
            image.cached) == ("body", "image/jpeg", len(jpeg), len(new), False)
    assert image.report["protected"] is True
    (_, options), = fake_protect.calls
    assert options.site == "raw-site"


async def test_raw_body_is_sniffed_not_trusted(policy: Policy, fake_protect, jpeg: bytes) -> None:
    out = await rewrite_upload("PUT", "https://anything.test/u", {"Content-Type": "text/plain"},
                               jpeg, policy, fake_protect)
    assert out.changed and out.body == fake_protect.transform(jpeg)


async def test_resumed_upload_left_alone(policy: Policy, fake_protect, jpeg: bytes) -> None:
    headers = {"X-Entity-Length": "99999", "Offset": "4096"}
    out = await rewrite_upload("POST", "https://raw.test/rupload/x", headers, jpeg, policy,
                               fake_protect)
    assert not out.changed and out.body is jpeg and "resumed upload" in out.reason
    assert dict(out.headers) == headers and not fake_protect.calls


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded", "application/json", "multipart/form-data"])
async def test_an_image_body_is_an_image_whatever_its_label(
        policy: Policy, fake_protect, jpeg: bytes, content_type: str) -> None:
    # `curl --data-binary @me.jpg` labels the photo a form; no label hides it
    out = await rewrite_upload("POST", "https://block.test/u", {"Content-Type": content_type},
                               jpeg, policy, fake_protect)
    assert out.changed and out.body == fake_protect.transform(jpeg)
    no_raw = parse_policy("sites:\n  - {name: s, hosts: ['*'], formats: [multipart]}\n")
    out = await rewrite_upload("POST", "https://h/u", {"Content-Type": content_type}, jpeg,
                               no_raw, fake_protect)
    assert not out.changed and "format raw is not enabled" in out.reason


async def test_a_piece_of_a_longer_file_is_left_alone(
        policy: Policy, fake_protect, jpeg: bytes) -> None:
    # the first piece of a photo with data after the image (a motion photo's video)
    headers = {"X-Entity-Length": str(len(jpeg) + 5000), "Offset": "0"}
    out = await rewrite_upload("POST", "https://raw.test/rupload/x", headers, jpeg, policy,
                               fake_protect)
    assert not out.changed and out.body is jpeg and not fake_protect.calls
    assert f"X-Entity-Length declares {len(jpeg) + 5000} bytes" in out.reason
    empty = await rewrite_upload("POST", "https://raw.test/rupload/x", {"X-Entity-Length": ""},
                                 jpeg, policy, fake_protect)  # as the JS SDK reads it
    assert not empty.changed and "X-Entity-Length declares  bytes" in empty.reason


async def test_multipart_only_image_parts_change(policy: Policy, fake_protect, jpeg: bytes) -> None:
    content_type, body = await multipart_body(("caption", "hi\r\n--there"), ("media", jpeg),
                                              ("alt", "a face"))
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    out = await rewrite_upload("POST", "https://site.test/api/upload", headers, body, policy,
                               fake_protect)
    new = fake_protect.transform(jpeg)
    assert out.changed and out.body == body.replace(jpeg, new)
    assert dict(out.headers)["Content-Length"] == str(len(out.body))
    assert [i.location for i in out.images] == ["multipart part 'media'"]


async def test_json_base64_and_data_uri(policy: Policy, fake_protect, jpeg: bytes) -> None:
    body = json.dumps({"username": "x", "avatar": "data:image/jpeg;base64," + b64(jpeg),
                       "banner": b64(jpeg)}, indent=1).encode()
    # fields.test only considers media, media_data and avatar; text/plain JSON is sniffed.
    out = await rewrite_upload("PATCH", "https://fields.test/api/v9/users/@me",
                               {"Content-Type": "text/plain;charset=UTF-8"}, body, policy,
                               fake_protect)
    new = fake_protect.transform(jpeg)
    assert out.changed and [i.location for i in out.images] == ["json $.avatar"]
    parsed = json.loads(out.body)
    assert parsed == {"username": "x", "avatar": "data:image/jpeg;base64," + b64(new),
                      "banner": b64(jpeg)}
    assert out.body.startswith(b'{\n "username": "x",\n "avatar": "data:image/jpeg;base64,')


async def test_json_with_a_byte_order_mark_whatever_its_label(
        policy: Policy, fake_protect, jpeg: bytes) -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"photo": b64(jpeg)}).encode()  # .NET's StreamWriter
    for content_type in ("application/json", "text/plain"):
        out = await rewrite_upload("POST", "https://site.test/api", {"Content-Type": content_type},
                                   body, policy, fake_protect)
        assert out.changed and out.body.startswith(b"\xef\xbb\xbf")
        assert json.loads(out.body[3:])["photo"] == b64(fake_protect.transform(jpeg))


async def test_a_photo_as_json_byte_values_is_protected(
        policy: Policy, fake_protect, jpeg: bytes) -> None:
    # a Flutter app's jsonEncode({"photo": bytes}); before, it went unprotected
    body = json.dumps({"photo": list(jpeg)}, separators=(",", ":")).encode()
    out = await rewrite_upload("POST", "https://site.test/api", {"Content-Type": "application/json"},
                               body, policy, fake_protect)
    assert out.changed and bytes(json.loads(out.body)["photo"]) == fake_protect.transform(jpeg)


async def test_form_base64(policy: Policy, fake_protect, jpeg: bytes) -> None:
    body = urlencode({"command": "APPEND", "media_id": "7", "segment_index": "0",
                      "media_data": b64(jpeg)}).encode()
    out = await rewrite_upload(
        "POST", "https://fields.test/i/media/upload.json",
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))},
        body, policy, fake_protect)
    assert out.changed
    assert dict(parse_qsl(out.body.decode()))["media_data"] == b64(fake_protect.transform(jpeg))
    assert dict(out.headers)["Content-Length"] == str(len(out.body))


@pytest.mark.parametrize(("url", "headers", "reason"), [
    ("https://signed.test/u", {}, "signed"),
    ("https://site.test/u", {"x-amz-content-sha256": hashlib.sha256(b"x").hexdigest()},
     "signature covers the body"),
    ("https://site.test/u", {"Content-MD5": "x", "Authorization": SIGV4.format("content-md5;host")},
     "Content-MD5 header cannot be recomputed"),  # the signature's case: test_headers
    ("https://site.test/u", {"Content-Encoding": "gzip"}, "content-encoded"),
    ("https://nomatch.test.example/u", {}, None),
])
async def test_untouched_without_protecting(policy: Policy, fake_protect, jpeg: bytes,
                                            url: str, headers: dict, reason: str | None) -> None:
    if reason is None:
        policy = Policy(tuple(s for s in policy.sites if s.name != "any"))
        reason = "no policy site matches"
    out = await rewrite_upload("PUT", url, headers, jpeg, policy, fake_protect)
    assert not out.changed and out.body is jpeg and reason in out.reason
    assert not fake_protect.calls


async def test_signed_content_length_forces_exact_size(
        policy: Policy, fake_protect, jpeg: bytes,
) -> None:
    headers = {"Authorization": SIGV4.format("content-length;host"),
               "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(len(jpeg))}
    fake_protect.mode = "flip"
    out = await rewrite_upload("PUT", "https://site.test/u", headers, jpeg, policy, fake_protect)
    assert out.changed and len(out.body) == len(jpeg)
    assert fake_protect.calls[0][1].size_mode == "exact"
    fake_protect.mode = "append"  # a service that ignores size_mode=exact
    with pytest.raises(RewriteError, match="size_mode=exact"):
        await rewrite_upload("PUT", "https://site.test/u", headers, jpeg, policy, fake_protect)


@pytest.mark.parametrize("extra", [b"", b"\x00", b"\x00\x00"])
async def test_base64_that_hides_whether_its_writer_pads_is_replaced_at_its_length(
        policy: Policy, fake_protect, jpeg: bytes, extra: bytes,
) -> None:
    # a photo of 3n bytes written by a padded URL-safe writer shows no "=": the new photo
    # must be 3n bytes too, or a strict decoder of one kind or the other refuses it
    photo = jpeg + extra
    text = base64.urlsafe_b64encode(photo).decode()
    body = json.dumps({"photo": text}).encode()
    fake_protect.mode = "flip"
    out = await rewrite_upload("POST", "https://site.test/api", {"Content-Type": "application/json"},
                               body, policy, fake_protect)
    assert out.changed
    hidden = len(photo) % 3 == 0
    assert fake_protect.calls[0][1].size_mode == ("exact" if hidden else "any")
    new = json.loads(out.body)["photo"]
    assert base64.urlsafe_b64decode(new) == fake_protect.transform(photo)
    standard = json.dumps({"photo": base64.b64encode(photo).decode()}).encode()
    await rewrite_upload("POST", "https://site.test/api", {"Content-Type": "application/json"},
                         standard, policy, fake_protect)
    assert fake_protect.calls[-1][1].size_mode == "any"  # standard writers pad: no exact size
    if hidden:
        fake_protect.mode = "append"  # a service that ignores size_mode=exact
        with pytest.raises(RewriteError, match="size_mode=exact"):
            await rewrite_upload("POST", "https://site.test/api",
                                 {"Content-Type": "application/json"}, body, policy, fake_protect)


async def test_cache_prevents_a_second_protection(
        policy: Policy, fake_protect, jpeg: bytes,
) -> None:
    cache = ProtectCache()
    first = await rewrite_upload("PUT", "https://site.test/u", {}, jpeg, policy, fake_protect,
                                 cache=cache)
    retry = await rewrite_upload("PUT", "https://site.test/u", {}, jpeg, policy, fake_protect,
                                 cache=cache)
    assert len(fake_protect.calls) == 1
    assert retry.body == first.body and retry.images[0].cached and not first.images[0].cached


async def test_failure_raises_with_the_sites_on_failure(
        policy: Policy, fake_protect, jpeg: bytes,
) -> None:
    fake_protect.mode = "fail"
    with pytest.raises(RewriteError, match="service down") as info:
        await rewrite_upload("PUT", "https://block.test/u", {}, jpeg, policy, fake_protect)
    assert (info.value.site, info.value.on_failure) == ("blocking-site", "block")


_BLOCK_SITE = parse_policy(
    "sites:\n  - {name: strict, hosts: ['*'], on_failure: block, max_bytes: 100000,"
    " formats: [multipart, json_base64]}\n"
)


def _unrewritable(jpeg: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Requests carrying ``jpeg`` that the hook cannot rewrite, one per reason."""
    b64 = base64.b64encode(jpeg).decode()
    return [
        ({"Content-Type": "image/jpeg"}, jpeg),  # raw: not enabled
        ({"Content-Type": "application/json"}, f'{{"photo": "{b64}"'.encode()),  # malformed
        ({"x-amz-content-sha256": hashlib.sha256(jpeg).hexdigest()}, jpeg),  # signed
        ({"Content-Type": "application/octet-stream"}, jpeg + bytes(100000)),  # too big
        ({"Content-Type": "text/plain"}, b"photo=" + b64.replace("/", "%2F").encode()),
    ]


@pytest.mark.parametrize("case", range(5))
async def test_a_block_site_never_lets_an_image_it_cannot_protect_go(
        fake_protect, jpeg: bytes, case: int) -> None:
    headers, body = _unrewritable(jpeg)[case]
    with pytest.raises(RewriteError, match="the image this body carries cannot be protected") as info:
        await rewrite_upload("POST", "https://h/u", headers, body, _BLOCK_SITE, fake_protect)
    assert info.value.on_failure == "block" and not fake_protect.calls
    with pytest.raises(RewriteError, match="cannot be protected"):
        rewrite_upload_sync("POST", "https://h/u", headers, body, _BLOCK_SITE, fake_protect.sync)
    passing = parse_policy("sites:\n  - {name: s, hosts: ['*'], max_bytes: 100000,"
                           " formats: [multipart, json_base64]}\n")
    out = await rewrite_upload("POST", "https://h/u", headers, body, passing, fake_protect)
    assert not out.changed and out.body is body


async def test_json_written_inside_json_or_a_form_is_protected_on_a_block_site(
        fake_protect, jpeg: bytes) -> None:
    # before, a block site refused these (an image it could not read) and a pass site sent
    # them unprotected
    document = json.dumps({"caption": "x", "photo": b64(jpeg)})
    forms = parse_policy("sites:\n  - {name: strict, hosts: ['*'], on_failure: block,"
                         " max_bytes: 100000, formats: [form_base64, json_base64]}\n")
    for headers, body, read in [
        ({"Content-Type": "application/json"}, json.dumps({"payload": document}).encode(),
         lambda out: json.loads(json.loads(out)["payload"])),
        ({"Content-Type": "application/x-www-form-urlencoded"},
         urlencode({"payload": document}).encode(),
         lambda out: json.loads(dict(parse_qsl(out.decode()))["payload"])),
    ]:
        out = await rewrite_upload("POST", "https://h/u", headers, body, forms, fake_protect)
        assert out.changed and read(out.body)["photo"] == b64(fake_protect.transform(jpeg))
        assert out.images[0].location.endswith("→ json $.photo")


async def test_a_block_site_refuses_a_photo_as_byte_values_outside_its_fields(
        fake_protect, jpeg: bytes) -> None:
    strict = parse_policy("sites:\n  - {name: strict, hosts: ['*'], on_failure: block,"
                          " max_bytes: 100000, formats: [json_base64], fields: [avatar]}\n")
    body = json.dumps({"avatar": b64(jpeg), "photo": list(jpeg)}).encode()
    with pytest.raises(RewriteError, match="an image outside the fields"):
        await rewrite_upload("POST", "https://h/u", {"Content-Type": "application/json"}, body,
                             strict, fake_protect)
    assert not fake_protect.calls


async def test_a_block_site_lets_what_holds_no_image_go(fake_protect) -> None:
    for headers, body in [({"Content-Type": "application/json"}, b'{"text": "hi"'),
                          ({"Content-Type": "text/plain"}, b"hello"),
                          ({}, b"")]:
        out = await rewrite_upload("POST", "https://h/u", headers, body, _BLOCK_SITE, fake_protect)
        assert not out.changed and out.body is body


async def test_never_half_rewritten(policy: Policy, jpeg: bytes, png: bytes) -> None:
    """One of two images fails: the hook raises rather than return one protected."""
    async def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        if data == png:
            raise TimeoutError("too slow")
        return ProtectResult(data + b"!", "image/jpeg", {"protected": True})

    content_type, body = await multipart_body(("a", jpeg), ("b", png))
    with pytest.raises(RewriteError, match=r"part 'b'.*too slow"):
        await rewrite_upload("POST", "https://site.test/u", {"Content-Type": content_type},
                             body, policy, protect)


async def test_no_face_leaves_body_identical(policy: Policy, fake_protect, jpeg: bytes) -> None:
    fake_protect.mode = "same"
    out = await rewrite_upload("PUT", "https://site.test/u", {"Content-Length": "1"}, jpeg,
                               policy, fake_protect)
    assert not out.changed and out.body is jpeg and "no face" in out.reason
    assert dict(out.headers) == {"Content-Length": "1"} and out.images[0].report["faces"] == 0


async def test_service_breaking_the_contract_is_a_failure(
        policy: Policy, jpeg: bytes, png: bytes,
) -> None:
    async def wrong_format(data: bytes, options: ProtectOptions) -> ProtectResult:
        return ProtectResult(png, "image/png", {"protected": True})

    with pytest.raises(RewriteError, match="returned image/png for a image/jpeg"):
        await rewrite_upload("PUT", "https://site.test/u", {}, jpeg, policy, wrong_format)


@pytest.mark.parametrize(("url", "content_type", "body_kind", "reason"), [
    ("https://site.test/u", "multipart/form-data; boundary=zz", "text", "malformed body"),
    ("https://site.test/u", "application/json", "broken-json", "malformed body"),
    ("https://site.test/u", "image/jpeg", "truncated", "incomplete image/jpeg"),
    ("https://site.test/u", "application/octet-stream", "text", "no image"),
    ("https://site.test/u", "image/jpeg", "empty", "empty body"),
    ("https://raw.test/rupload/1", "multipart/form-data; boundary=zz", "text",
     "format multipart is not enabled"),
])
async def test_left_alone_with_a_reason(policy: Policy, fake_protect, make_image,
                                        url: str, content_type: str, body_kind: str,
                                        reason: str) -> None:
    big = make_image("JPEG", size=(64, 64), noise=True)
    body = {"jpeg": big, "broken-json": b'{"a": ', "truncated": big[: len(big) // 2],
            "text": b"hello", "empty": b""}[body_kind]
    out = await rewrite_upload("POST", url, {"Content-Type": content_type}, body, policy,
                               fake_protect)
    assert not out.changed and out.body is body and reason in out.reason
    assert not fake_protect.calls


async def test_max_bytes(fake_protect, jpeg: bytes) -> None:
    small = parse_policy("sites:\n  - {name: s, hosts: ['*'], max_bytes: 10}\n")
    out = await rewrite_upload("PUT", "https://h/u", {}, jpeg, small, fake_protect)
    assert not out.changed and "exceeds max_bytes 10" in out.reason


def _sf(alg: str, data: bytes) -> str:
    return f"{alg}=:{b64(hashlib.new(alg.replace('-', ''), data).digest())}:"


async def test_digest_fields_follow_the_protected_body(
        policy: Policy, fake_protect, jpeg: bytes) -> None:
    content_type, body = await multipart_body(("caption", "hi"), ("media", jpeg))
    headers = [("Content-Type", content_type),
               ("Content-Digest", f"{_sf('sha-256', body)}, {_sf('sha-512', body)}"),
               ("Repr-Digest", _sf("sha-512", body)),
               ("Want-Content-Digest", "sha-256=10")]
    out = await rewrite_upload("POST", "https://fields.test/up", headers, body, policy,
                               fake_protect)
    assert out.changed and out.body != body
    assert dict(out.headers) == {
        "Content-Type": content_type,
        "Content-Digest": f"{_sf('sha-256', out.body)}, {_sf('sha-512', out.body)}",
        "Repr-Digest": _sf("sha-512", out.body),
        "Want-Content-Digest": "sha-256=10",
    }


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:",
     "Content-Digest header cannot be recomputed: unsupported algorithm md5"),
    ("Repr-Digest", "sha-256=:AAAA:, unixcksum=:AAAA:", "unsupported algorithm unixcksum"),
    ("Repr-Digest", _sf("sha-256", b"the whole file"), "sha-256 digest does not match the body"),
    ("Content-Digest", "sha-256=AAAA", "malformed"),
])
async def test_digest_fields_that_cannot_follow_leave_the_upload_alone(
        policy: Policy, fake_protect, jpeg: bytes, field: str, value: str, reason: str) -> None:
    headers = [("Content-Type", "image/jpeg"), (field, value)]
    out = await rewrite_upload("POST", "https://raw.test/rupload/fb_uploader_1", headers, jpeg,
                               policy, fake_protect)
    assert not out.changed and out.body == jpeg and out.headers == tuple(headers)
    assert out.site == "raw-site" and reason in out.reason
    assert not fake_protect.calls


# The blocking form: the same answers from the same requests, one image after another.

@pytest.mark.parametrize(("url", "kind"), [
    ("https://raw.test/rupload/fb_uploader_1", "raw"),
    ("https://site.test/api/upload", "multipart"),
    ("https://fields.test/api/v9/users/@me", "json"),
    ("https://raw.test/rupload/2", "multipart"),  # format not enabled: untouched
    ("https://signed.test/u", "raw"),  # untouched
])
async def test_sync_form_answers_as_the_async_one(policy: Policy, fake_protect, jpeg: bytes,
                                                  png: bytes, url: str, kind: str) -> None:
    if kind == "multipart":
        content_type, body = await multipart_body(("caption", "hi"), ("media", jpeg),
                                                  ("avatar", png))
    elif kind == "json":
        content_type, body = "application/json", json.dumps({"avatar": b64(jpeg)}).encode()
    else:
        content_type, body = "image/jpeg", jpeg
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("X-Entity-Length", str(len(body)))]
    expected = await rewrite_upload("POST", url, headers, body, policy, fake_protect)
    out = rewrite_upload_sync("POST", url, headers, body, policy, fake_protect.sync)
    assert out == expected
    assert [data for data, _ in fake_protect.calls[len(fake_protect.calls) // 2:]] == \
        [data for data, _ in fake_protect.calls[:len(fake_protect.calls) // 2]]


def test_sync_form_stops_at_the_first_failure(policy: Policy, jpeg: bytes, png: bytes) -> None:
    calls: list[bytes] = []

    def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        calls.append(data)
        raise ConnectionError("service down")

    boundary = "zz"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n"
        for name, data in (("a", jpeg), ("b", png))) + f"--{boundary}--\r\n".encode()
    with pytest.raises(RewriteError, match=r"part 'a'.*service down") as info:
        rewrite_upload_sync("POST", "https://block.test/u",
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            body, policy, protect)
    assert info.value.on_failure == "block" and calls == [jpeg]


def test_sync_form_uses_the_cache(policy: Policy, fake_protect, jpeg: bytes) -> None:
    cache = ProtectCache()
    first = rewrite_upload_sync("PUT", "https://site.test/u", {}, jpeg, policy,
                                fake_protect.sync, cache=cache)
    retry = rewrite_upload_sync("PUT", "https://site.test/u", {}, jpeg, policy,
                                fake_protect.sync, cache=cache)
    assert len(fake_protect.calls) == 1 and retry.body == first.body != jpeg
    assert retry.images[0].cached and not first.images[0].cached


async def test_a_rejected_answer_is_not_cached(policy: Policy, jpeg: bytes) -> None:
    calls: list[int] = []

    async def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        calls.append(1)  # the first answer is a web page, not the photo
        body = b"<html>oops</html>" if len(calls) == 1 else data[:-3] + b"\x00\x00\x00"
        return ProtectResult(body, "image/jpeg", {})

    cache = ProtectCache()
    with pytest.raises(RewriteError, match="non-image"):
        await rewrite_upload("PUT", "https://site.test/u", {}, jpeg, policy, protect, cache=cache)
    out = await rewrite_upload("PUT", "https://site.test/u", {}, jpeg, policy, protect, cache=cache)
    assert out.changed and len(calls) == 2


async def test_a_cached_answer_is_checked_too(policy: Policy, jpeg: bytes) -> None:
    async def grown(data: bytes, options: ProtectOptions) -> ProtectResult:
        return ProtectResult(data + b"\x00" * 16, "image/jpeg", {})

    cache = ProtectCache()  # filled by another caller, with an answer longer than the photo
    exact = next(s for s in policy.sites if s.name == "exact-site")
    await cache.protect(jpeg, exact.options(), grown)
    with pytest.raises(RewriteError, match="size_mode=exact"):
        await rewrite_upload("PUT", "https://exact.test/u", {}, jpeg, policy, grown, cache=cache)


async def test_a_content_encoded_body_on_a_block_site_is_inflated_to_look(
        fake_protect, jpeg: bytes) -> None:
    async def post(body: bytes, encoding: str) -> UploadRewrite:
        headers = {"Content-Type": "image/jpeg", "Content-Encoding": encoding}
        return await rewrite_upload("POST", "https://h/u", headers, body, _BLOCK_SITE,
                                    fake_protect)

    with pytest.raises(UnprotectableUpload):
        await post(gzip.compress(jpeg), "gzip")
    text = gzip.compress(b"hello " * 1000)
    assert not (await post(text, "gzip")).changed
    for doubtful, encoding in [(text[:-9], "gzip"), (b"hello", "br")]:  # cut short; unknown
        with pytest.raises(UnprotectableUpload):
            await post(doubtful, encoding)


async def test_a_transfer_coded_body_on_a_block_site_is_inflated_to_look(fake_protect, jpeg: bytes) -> None:
    # Transfer-Encoding: gzip, chunked: the proxy hands the body dechunked, still gzip
    headers = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "gzip, chunked"}
    with pytest.raises(UnprotectableUpload, match="gzip"):
        await rewrite_upload("PUT", "https://h/u", headers, gzip.compress(jpeg), _BLOCK_SITE, fake_protect)
    assert hdrs.content_encoding((("Transfer-Encoding", "chunked"),)) == "identity"  # no coding of the body


@pytest.mark.parametrize("codings", [("identity", "gzip"), ("gzip", "gzip")])
async def test_every_content_encoding_field_counts(fake_protect, jpeg: bytes,
                                                   codings: tuple[str, str]) -> None:
    """A client that sends the header twice: the body is what all of them say."""
    headers = [("Content-Type", "image/jpeg"), *(("Content-Encoding", c) for c in codings)]
    body = gzip.compress(gzip.compress(jpeg)) if codings[0] == "gzip" else gzip.compress(jpeg)
    with pytest.raises(UnprotectableUpload):
        await rewrite_upload("POST", "https://h/u", headers, body, _BLOCK_SITE, fake_protect)


async def test_a_block_site_refuses_a_photo_where_its_policy_does_not_look(
        fake_protect, jpeg: bytes) -> None:
    b64 = base64.b64encode(jpeg).decode()
    strict = parse_policy("sites:\n  - {name: s, hosts: ['*'], on_failure: block,"
                          " formats: [json_base64], fields: [avatar]}\n")
    body = json.dumps({"bio": f'<img src="data:image/jpeg;base64,{b64}">'}).encode()
    with pytest.raises(UnprotectableUpload, match="not in a field or format"):
        await rewrite_upload("POST", "https://h/u", {"Content-Type": "application/json"}, body,
                             strict, fake_protect)
    text = json.dumps({"bio": "no photo here"}).encode()
    out = await rewrite_upload("POST", "https://h/u", {"Content-Type": "application/json"}, text,
                               strict, fake_protect)
    assert not out.changed and out.reason == "no image in the body"


@pytest.mark.parametrize("on_failure", ["block", "pass"])
async def test_a_photo_beside_the_field_the_policy_protects(fake_protect, jpeg: bytes,
                                                             on_failure: str) -> None:
    """A block site refuses the body (the photo outside would go as it is); a pass site
    sends it with the field's photo protected."""
    b64 = base64.b64encode(jpeg).decode()
    policy = parse_policy(f"sites:\n  - {{name: s, hosts: ['*'], on_failure: {on_failure},"
                          " formats: [json_base64], fields: [avatar]}\n")
    body = json.dumps({"avatar": b64, "preview": b64}).encode()
    headers = {"Content-Type": "application/json"}
    if on_failure == "block":
        with pytest.raises(UnprotectableUpload, match="outside the fields"):
            await rewrite_upload("POST", "https://h/u", headers, body, policy, fake_protect)
        return
    out = await rewrite_upload("POST", "https://h/u", headers, body, policy, fake_protect)
    sent = json.loads(out.body)
    assert out.changed and sent["avatar"] != b64 and sent["preview"] == b64


async def test_a_photo_after_a_compressed_stream_is_seen(fake_protect, jpeg: bytes) -> None:
    body = zlib.compress(b"hello " * 100) + jpeg
    headers = {"Content-Type": "text/plain", "Content-Encoding": "deflate"}
    with pytest.raises(UnprotectableUpload):
        await rewrite_upload("POST", "https://h/u", headers, body, _BLOCK_SITE, fake_protect)
    members = gzip.compress(b"hello " * 100) + gzip.compress(jpeg)  # a server reads both
    with pytest.raises(UnprotectableUpload):
        await rewrite_upload("POST", "https://h/u", {**headers, "Content-Encoding": "gzip"},
                             members, _BLOCK_SITE, fake_protect)
    padded = gzip.compress(b"hello " * 100) + bytes(8)  # padding after the stream: nothing
    out = await rewrite_upload("POST", "https://h/u", {**headers, "Content-Encoding": "gzip"},
                               padded, _BLOCK_SITE, fake_protect)
    assert not out.changed


def _stated_beside(jpeg: bytes) -> list[tuple[dict[str, str], bytes, str]]:
    """Uploads that state the photo's digest beside it, the way sites check one."""
    md5 = b64(hashlib.md5(jpeg).digest())
    related = (b"--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
               + json.dumps({"name": "a.jpg", "md5Hash": md5}).encode()
               + b"\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--b--\r\n")
    form = urlencode({"media_data": b64(jpeg),
                      "file_sha1": hashlib.sha1(jpeg).hexdigest()}).encode()
    document = json.dumps({"avatar": b64(jpeg),
                           "checksum": {"sha256": hashlib.sha256(jpeg).hexdigest()}}).encode()
    return [({"Content-Type": "multipart/related; boundary=b"}, related, "md5"),
            ({"Content-Type": "application/x-www-form-urlencoded"}, form, "sha1"),
            ({"Content-Type": "application/json"}, document, "sha256")]


@pytest.mark.parametrize("case", range(3))
async def test_a_photo_whose_digest_goes_beside_it_is_not_changed(
        fake_protect, jpeg: bytes, case: int) -> None:
    # the site would hold the protected photo to the original's checksum and refuse it
    headers, body, algorithm = _stated_beside(jpeg)[case]
    site = "sites:\n  - {name: s, hosts: ['*'], max_bytes: 1000000, on_failure: %s}\n"
    out = await rewrite_upload("POST", "https://h/u", headers, body,
                               parse_policy(site % "pass"), fake_protect)
    assert not out.changed and out.body is body and not fake_protect.calls
    assert f"states the {algorithm} digest of" in out.reason
    with pytest.raises(RewriteError, match=f"states the {algorithm} digest") as info:
        await rewrite_upload("POST", "https://h/u", headers, body,
                             parse_policy(site % "block"), fake_protect)
    assert info.value.on_failure == "block"


async def test_a_header_stating_a_parts_digest_keeps_the_part(
        policy: Policy, fake_protect, jpeg: bytes) -> None:
    content_type, body = await multipart_body(("media", jpeg))
    headers = {"Content-Type": content_type, "X-Image-MD5": hashlib.md5(jpeg).hexdigest()}
    out = await rewrite_upload("POST", "https://site.test/api/upload", headers, body, policy,
                               fake_protect)
    assert not out.changed and "states the md5 digest of multipart part 'media'" in out.reason
    headers["X-Image-MD5"] = hashlib.md5(b"another photo").hexdigest()
    out = await rewrite_upload("POST", "https://site.test/api/upload", headers, body, policy,
                               fake_protect)
    assert out.changed


async def test_reading_a_large_body_leaves_the_event_loop_free(policy: Policy, fake_protect,
                                                                jpeg: bytes) -> None:
    # 100k captions: a second of pure Python, during which a proxy answered no one
    import asyncio
    import gc
    import time

    body = json.dumps({"captions": [f"a caption of the photo, number {i}" for i in range(100_000)],
                       "photo": b64(jpeg)}).encode()
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # A full collection stops every thread for as long as the heap takes to walk (a test
    # process's: 0.3 s on a busy machine): CPython's pause, not the hook's, so none here.
    gc.collect()
    gc.disable()
    try:
        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        out = await rewrite_upload("POST", "https://site.test/api",
                                   {"Content-Type": "application/json"}, body, policy,
                                   fake_protect)
        took = time.perf_counter() - started
        ticker.cancel()
    finally:
        gc.enable()
    assert out.changed
    longest = max(gaps, default=took)
    assert longest < max(0.25, took / 3), f"the loop stood still {longest:.2f} s of {took:.2f}"
