"""Fuzzed ``POST /v1/protect`` requests: random, mutated and malformed bodies.

:func:`make_case` builds request ``index`` of a run from ``random.Random(f"{seed}/{index}")``
alone, so any case regenerates on its own, without replaying the cases before it. The mix:

- ``random``: random bytes, half of them behind an image format's magic number;
- ``mutated``: a valid JPEG, PNG, WebP, GIF, HEIC, BMP or TIFF with bit flips, overwritten
  runs, cuts, insertions, deletions or duplicated ranges;
- ``length_lie``: a chunk, segment or box length rewritten (0, 1, off by one, huge);
- ``huge_dims``: declared width or height rewritten, mostly past the pixel limit
  (decompression bombs; PNG CRCs recomputed so that the lie reaches the decoder);
- ``multipart``: a form with one to three defects (bad, missing, overlong boundaries; no
  closing delimiter; missing, duplicate or nested parts; enormous or junk part headers;
  odd encodings; non-UTF-8 or overlong option values);
- ``content_type``: a valid image under a wrong, missing or malformed ``Content-Type``;
- ``base64``: the image (or junk) base64-encoded: raw, as a data URL, in JSON or a URL form;
- ``options``: a valid image with junk, duplicate or unknown options;
- ``oversized_head``: a request line or header past aiohttp's limits;
- ``too_large``: a body past the service's byte limit;
- ``valid``: an unmodified image, the control.

Any case may also carry fuzzed query options. The seeds are small images built here, one of
them a face photo that the detector finds, so that mutated faces reach the whole pipeline.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import piexif  # type: ignore[import-untyped]
import pillow_heif
from PIL import Image, ImageCms
from skimage import data as samples

from grasp_guard.benchmarks.fuzz_formats import Field, layout
from grasp_guard.benchmarks.fuzz_forms import DEFECTS, Form, image_part, option_part, token

#: The service's default pixel limit; a side of 7072 squared is just past it.
MAX_PIXELS = 50_000_000
_PAST_THE_LIMIT = 7072
#: The service's default body limit; ``too_large`` bodies go just past it.
MAX_BYTES = 25 * 1024 * 1024

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a",
          b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x00\x18ftypavif", b"II*\x00", b"BM")
_MIME = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
         "heic": "image/heic", "bmp": "image/bmp", "tiff": "image/tiff"}
_OPTION_VALUES = {
    "preset": ["fast", "balanced", "strong", "", "FAST", "fast ", "ultra"],
    "size_mode": ["any", "max", "exact", "min", ""],
    "on_no_face": ["skip", "whole", "none"],
    "site": ["instagram", "x", "generic-multipart", "no-such-site", "../etc/passwd"],
    "site_jpeg_quality": ["1", "85", "100", "0", "101", "-5", "1e3", "٨٥", "nan"],
    "site_max_side": ["16", "15", "640", "99999999999999999999", "0x100"],
    "site_blur_sigma": ["0.5", "10", "0", "-1", "nan", "inf", "1e-320"],
}


@dataclass(frozen=True)
class FuzzCase:
    """One request: ``body`` posted with ``headers`` and the ``query`` pairs.

    ``content_type`` None sends no ``Content-Type`` at all. ``image`` is the image the
    service should read from a well-formed request (the raw body, or the form's ``image``
    part), or None when the request is malformed around it; a 200 is checked against it.
    """

    index: int
    kind: str
    detail: str
    body: bytes
    content_type: str | None
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    image: bytes | None = None


@functools.cache
def seed_images() -> dict[str, bytes]:
    """Small valid images of every format the service meets, by ``name.ext``; the JPEG,
    PNG and WebP ones carry EXIF (orientation and a thumbnail), ICC and XMP to re-encode."""
    face = Image.fromarray(samples.astronaut()).resize((256, 256), Image.Resampling.LANCZOS)
    stored = face.transpose(Image.Transpose.ROTATE_90)  # upright once its orientation applies
    small = Image.fromarray(samples.coffee()).resize((48, 36), Image.Resampling.LANCZOS)
    meta = {"exif": _exif(), "icc_profile": _icc(), "xmp": _XMP}
    rgba = small.convert("RGBA")
    rgba.putalpha(128)
    return {
        "face.jpg": _save(stored, "JPEG", quality=90, **meta),
        "face.png": _save(stored, "PNG", exif=meta["exif"], icc_profile=meta["icc_profile"]),
        "face.webp": _save(stored, "WEBP", quality=80, **meta),
        "face.heic": _heic(face, quality=60),
        "small.jpg": _save(small, "JPEG", quality=75, progressive=True, exif=meta["exif"]),
        "small.png": _save(small.convert("P", palette=Image.Palette.ADAPTIVE), "PNG",
                           transparency=0),
        "small-rgba.webp": _save(rgba, "WEBP", lossless=True),
        "small.heic": _heic(small, quality=50),
        "small.gif": _save(small.convert("P"), "GIF"),
        "small.bmp": _save(small, "BMP"),
        "small.tiff": _save(small, "TIFF"),
    }


_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
        b'02/22-rdf-syntax-ns#"><rdf:Description tiff:Orientation="6" xmlns:tiff="http://ns.'
        b'adobe.com/tiff/1.0/"/></rdf:RDF></x:xmpmeta>')


def _exif() -> bytes:
    """EXIF with an orientation (rotate 90° to display), a comment and a JPEG thumbnail."""
    thumbnail = _save(Image.new("RGB", (16, 12), "red"), "JPEG")
    return piexif.dump({
        "0th": {piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.Make: b"GRASP fuzz"},
        "Exif": {piexif.ExifIFD.UserComment: b"ASCII\0\0\0fuzz"},
        "1st": {piexif.ImageIFD.JPEGInterchangeFormat: 0,
                piexif.ImageIFD.JPEGInterchangeFormatLength: len(thumbnail)},
        "thumbnail": thumbnail,
    })


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _heic(image: Image.Image, quality: int) -> bytes:
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    buf = io.BytesIO()
    pillow_heif.from_bytes("RGB", image.size, rgb.tobytes()).save(buf, quality=quality)
    return buf.getvalue()


# ---- byte-level mutations -----------------------------------------------------------------

def _interesting(rng: random.Random, size: int, original: int) -> int:
    top = (1 << (8 * size)) - 1
    return rng.choice([0, 1, 2, original - 1, original + 1, original * 2, original // 2,
                       top >> 1, (top >> 1) + 1, top, rng.randint(0, top)])


def _flip_bits(rng: random.Random, data: bytearray) -> str:
    n = rng.choice([1, 1, 2, 4, 8, 32])
    for _ in range(n):
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
    return f"flip {n} bits"


def _overwrite(rng: random.Random, data: bytearray) -> str:
    pos, n = rng.randrange(len(data)), rng.choice([1, 2, 4, 16, 64])
    byte = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    data[pos:pos + n] = bytes([byte]) * len(data[pos:pos + n])
    return f"overwrite {n} at {pos}"


def _truncate(rng: random.Random, data: bytearray) -> str:
    cut = rng.choice([rng.randrange(len(data)), rng.randrange(min(len(data), 64))])
    del data[cut:]
    return f"truncate at {cut}"


def _insert(rng: random.Random, data: bytearray) -> str:
    pos, n = rng.randrange(len(data) + 1), rng.choice([1, 8, 100, 4096])
    data[pos:pos] = rng.randbytes(n)
    return f"insert {n} at {pos}"


def _delete(rng: random.Random, data: bytearray) -> str:
    pos, n = rng.randrange(len(data)), rng.choice([1, 4, 64, 1024])
    del data[pos:pos + n]
    return f"delete {n} at {pos}"


def _duplicate(rng: random.Random, data: bytearray) -> str:
    pos, n = rng.randrange(len(data)), rng.choice([4, 64, 1024])
    chunk = bytes(data[pos:pos + n])
    at = rng.randrange(len(data) + 1)
    data[at:at] = chunk * rng.choice([1, 2, 16])
    return f"duplicate {len(chunk)} from {pos} at {at}"


_MUTATIONS: tuple[Callable[[random.Random, bytearray], str], ...] = (
    _flip_bits, _flip_bits, _overwrite, _truncate, _insert, _delete, _duplicate)


def _lie(rng: random.Random, data: bytearray, fields: tuple[Field, ...], value: int) -> str:
    f = rng.choice(fields)
    before = f.read(data)
    f.write(data, value)
    return f"{before} -> {f.read(data)} at {f.offset}"


def _pick_seed(rng: random.Random) -> tuple[str, bytes]:
    name = rng.choice(sorted(seed_images()))
    return name, seed_images()[name]


def _mime(name: str) -> str:
    return _MIME[name.rsplit(".", 1)[1]]


# ---- case kinds ----------------------------------------------------------------------------

def _random(rng: random.Random, index: int) -> FuzzCase:
    body = rng.randbytes(int(2 ** rng.uniform(0, 16)))
    if rng.random() < 0.5:
        body = rng.choice(_MAGIC) + body
    ctype = rng.choice(["application/octet-stream", "image/jpeg", "image/png", None])
    return FuzzCase(index, "random", f"{len(body)} bytes", body, ctype, image=body)


def _mutated(rng: random.Random, index: int) -> FuzzCase:
    name, seed = _pick_seed(rng)
    body = bytearray(seed)
    done = [rng.choice(_MUTATIONS)(rng, body) for _ in range(rng.choice([1, 1, 2, 3]))
            if body]
    return FuzzCase(index, "mutated", f"{name}: {'; '.join(done)}", bytes(body), _mime(name),
                    image=bytes(body))


def _length_lie(rng: random.Random, index: int) -> FuzzCase:
    name, seed = _pick_seed(rng)
    body = bytearray(seed)
    lengths = layout(seed).lengths
    if not lengths:
        return _mutated(rng, index)
    f = rng.choice(lengths)
    detail = _lie(rng, body, (f,), _interesting(rng, f.size, f.read(body)))
    return FuzzCase(index, "length_lie", f"{name}: length {detail}", bytes(body), _mime(name),
                    image=bytes(body))


def _huge_dims(rng: random.Random, index: int) -> FuzzCase:
    name, seed = _pick_seed(rng)
    body = bytearray(seed)
    dims = layout(seed).dimensions
    if not dims:
        return _mutated(rng, index)
    details = []
    for _ in range(rng.choice([1, 2])):
        f = rng.choice(dims)
        side = rng.choice([int(2 ** rng.uniform(12, 8 * f.size)), _PAST_THE_LIMIT, 65535, 0,
                           _interesting(rng, f.size, f.read(body))])
        details.append(_lie(rng, body, (f,), side))
    if rng.random() < 0.3:  # little data behind the big header
        del body[rng.randrange(len(body) // 2, len(body)):]
    return FuzzCase(index, "huge_dims", f"{name}: size {'; '.join(details)}", bytes(body),
                    _mime(name), image=bytes(body))


def _multipart(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    if rng.random() < 0.3:
        image = bytes(_mutated(rng, index).body)
    boundary = token(rng, rng.choice([1, 16, 40, 70]))
    form = Form([image_part(image, _mime(name))], boundary.encode(), f'"{boundary}"')
    for option in rng.sample(sorted(_OPTION_VALUES), rng.choice([0, 0, 1, 2])):
        form.parts.insert(rng.randrange(1, len(form.parts) + 1),
                          option_part(option, rng.choice(_OPTION_VALUES[option]).encode()))
    defects = rng.sample(DEFECTS, rng.choice([0, 1, 1, 2, 3]))
    for defect in defects:
        if form.parts:
            defect(rng, form)
    ctype, body = form.render()
    names = [d.__name__.lstrip("_") for d in defects]
    if rng.random() < 0.1:
        body = body[:rng.randrange(len(body))]
        names.append("truncated")
    return FuzzCase(index, "multipart", f"{name}: {'+'.join(names) or 'well-formed'}", body,
                    ctype, image=None if names else image)


def _content_type(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    ctype = rng.choice([None, "text/plain", "application/json", "image/png", "image/gif",
                        "application/x-www-form-urlencoded", "multipart/form-data",
                        "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
                        "multipart/byteranges; boundary=x", "a/b/c;;;=", "image/*; q=x",
                        "text/html; charset=utf-7", "", "*/*"])
    return FuzzCase(index, "content_type", f"{name} as {ctype!r}", image, ctype,
                    image=image if ctype is None or not ctype.startswith("multipart/") else None)


def _base64(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    payload = image if rng.random() < 0.8 else rng.randbytes(500)
    text = base64.b64encode(payload).decode()
    if rng.random() < 0.3:  # garbage: characters outside the alphabet, broken padding
        text = "".join(c if rng.random() > 0.05 else rng.choice("!*~ \n=") for c in text)
    variant = rng.choice(["raw", "data-url", "json", "form"])
    body, ctype = {
        "raw": (text, "application/octet-stream"),
        "data-url": (f"data:{_mime(name)};base64,{text}", "text/plain"),
        "json": (json.dumps({"image": text, "preset": "fast"}), "application/json"),
        "form": (f"image={quote(text)}&preset=fast", "application/x-www-form-urlencoded"),
    }[variant]
    return FuzzCase(index, "base64", f"{name} {variant}", body.encode(), ctype,
                    image=body.encode())


def _options(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    return FuzzCase(index, "options", name, image, _mime(name), query=_query(rng, always=True),
                    image=image)


def _query(rng: random.Random, always: bool = False) -> tuple[tuple[str, str], ...]:
    """Fuzzed options, or (a quarter of the time) ``on_no_face=whole`` alone: any image that
    decodes is then protected whole, so that its metadata goes through the re-encode."""
    if not always and rng.random() < 0.25:
        return (("on_no_face", "whole"),)
    if not always and rng.random() > 0.3:
        return ()
    pairs = [(k, rng.choice(v)) for k, v in _OPTION_VALUES.items() if rng.random() < 0.3]
    if rng.random() < 0.2:
        pairs.append(rng.choice([("preset", "fast"), ("no_such_option", "1"), ("", "x"),
                                 ("preset", "\x00"), ("site", "é" * 300)]))
    return tuple(pairs)


def _oversized_head(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    big = "a" * rng.choice([9000, 40_000])
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    variant = rng.choice(["query", "header", "many-headers"])
    if variant == "query":
        query = (("junk", big),)
    elif variant == "header":
        headers = (("X-Junk", big),)
    else:
        headers = tuple((f"X-Junk-{i}", str(i)) for i in range(200))
    return FuzzCase(index, "oversized_head", f"{name} {variant}", image, _mime(name),
                    query=query, headers=headers)


def _too_large(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    body = image + b"\x00" * (MAX_BYTES + 1 - len(image) + rng.randrange(1024))
    if rng.random() < 0.5:
        form = Form([image_part(body, _mime(name))], b"fuzz", "fuzz")
        ctype, body = form.render()
        return FuzzCase(index, "too_large", f"{name} in a form, {len(body)} bytes", body, ctype)
    return FuzzCase(index, "too_large", f"{name}, {len(body)} bytes", body, _mime(name))


def _valid(rng: random.Random, index: int) -> FuzzCase:
    name, image = _pick_seed(rng)
    return FuzzCase(index, "valid", name, image, _mime(name), image=image)


#: Each kind's generator and its share of the cases (weights, normalised).
KINDS: dict[str, tuple[Callable[[random.Random, int], FuzzCase], float]] = {
    "random": (_random, 12),
    "mutated": (_mutated, 30),
    "length_lie": (_length_lie, 10),
    "huge_dims": (_huge_dims, 8),
    "multipart": (_multipart, 20),
    "content_type": (_content_type, 6),
    "base64": (_base64, 5),
    "options": (_options, 5),
    "oversized_head": (_oversized_head, 1),
    "too_large": (_too_large, 0.2),
    "valid": (_valid, 2.8),
}


def make_case(seed: int, index: int) -> FuzzCase:
    """Case ``index`` of the run seeded ``seed`` (a pure function of both)."""
    rng = random.Random(f"{seed}/{index}")
    names = list(KINDS)
    kind = rng.choices(names, weights=[KINDS[n][1] for n in names])[0]
    case = KINDS[kind][0](rng, index)
    if kind not in ("options", "oversized_head"):
        case = dataclasses.replace(case, query=_query(rng))
    return case
