"""Malformed multipart forms for the service fuzz: a form, and the defects it can get.

A :class:`Form` holds raw parts (the image first) and renders the body and its
``Content-Type``; each defect function breaks one thing about it the way a broken or hostile
client would: its boundaries, its delimiters, its parts, their headers or their encodings.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

Part = tuple[list[bytes], bytes]  # raw header lines, body


@dataclass
class Form:
    """A multipart body under construction; :meth:`render` writes it out."""

    parts: list[Part]  # the image first
    boundary: bytes
    header_boundary: str | None
    newline: bytes = b"\r\n"
    close: bool = True
    preamble: bytes = b""
    media_type: str = "multipart/form-data"
    charset: bytes | None = None  # a leading ``_charset_`` part's value (RFC 7578 4.6)

    def render(self) -> tuple[str, bytes]:
        nl = self.newline
        out = bytearray(self.preamble)
        leading = [] if self.charset is None else [option_part("_charset_", self.charset)]
        for headers, body in [*leading, *self.parts]:
            out += b"--" + self.boundary + nl + b"".join(h + nl for h in headers) + nl
            out += body + nl
        out += b"--" + self.boundary + (b"--" + nl if self.close else b"")
        ctype = self.media_type
        if self.header_boundary is not None:
            ctype += f"; boundary={self.header_boundary}"
        return ctype, bytes(out)


def token(rng: random.Random, n: int) -> str:
    """``n`` characters a boundary may hold (RFC 2046 bchars, space aside)."""
    return "".join(rng.choices(string.ascii_letters + string.digits + "'()+_,-./:=?", k=n))


def option_part(name: str, value: bytes) -> Part:
    """A form field ``name`` holding ``value``."""
    return [f'Content-Disposition: form-data; name="{name}"'.encode()], value


def image_part(image: bytes, mime: str, name: str = "image") -> Part:
    """A file field ``name`` holding ``image`` as ``mime``."""
    return [f'Content-Disposition: form-data; name="{name}"; filename="photo"'.encode(),
            f"Content-Type: {mime}".encode()], image


def _boundary_mismatch(rng: random.Random, form: Form) -> None:
    form.header_boundary = token(rng, 20)


def _boundary_missing(rng: random.Random, form: Form) -> None:
    form.header_boundary = None


def _boundary_overlong(rng: random.Random, form: Form) -> None:
    form.boundary = token(rng, rng.choice([71, 200, 4000])).encode()
    form.header_boundary = form.boundary.decode()


def _boundary_invalid(rng: random.Random, form: Form) -> None:
    form.header_boundary = rng.choice(['""', '"a b"', "a;b", "\"unclosed", "a\tb", "=", ""])


def _no_closing(rng: random.Random, form: Form) -> None:
    form.close = False


def _no_image(rng: random.Random, form: Form) -> None:
    del form.parts[0]


def _duplicate_image(rng: random.Random, form: Form) -> None:
    form.parts.append(form.parts[0])


def _duplicate_option(rng: random.Random, form: Form) -> None:
    form.parts += [option_part("preset", b"fast")] * 2


def _huge_header(rng: random.Random, form: Form) -> None:
    headers = form.parts[0][0]
    headers.insert(rng.randrange(len(headers) + 1),
                   b"X-Junk: " + b"a" * rng.choice([8000, 9000, 100_000]))


def _many_headers(rng: random.Random, form: Form) -> None:
    form.parts[0][0].extend(f"X-Junk-{i}: {i}".encode() for i in range(rng.choice([100, 300])))


def _junk_header(rng: random.Random, form: Form) -> None:
    form.parts[0][0].append(rng.choice([b"no colon here", b": no name", rng.randbytes(40),
                                        b"Content-Disposition: form-data; name=image; name=x"]))


def _no_disposition(rng: random.Random, form: Form) -> None:
    headers, body = form.parts[0]
    form.parts[0] = ([h for h in headers if not h.startswith(b"Content-Disposition")], body)


def _weird_name(rng: random.Random, form: Form) -> None:
    headers, body = form.parts[0]
    name = rng.choice([b"name*=UTF-8''image", b'name="ima\\"ge"', b"name=", b'name="image',
                       'name="imäge"'.encode("latin-1"), b'name="image"; name="other"'])
    form.parts[0] = ([b"Content-Disposition: form-data; " + name, *headers[1:]], body)


def _nested(rng: random.Random, form: Form) -> None:
    inner, (headers, body) = token(rng, 12).encode(), form.parts[0]
    wrapped = b"--" + inner + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
    wrapped += b"\r\n--" + inner + b"--\r\n"
    form.parts[0] = ([*headers[:1], b"Content-Type: multipart/mixed; boundary=" + inner], wrapped)


def _transfer_encoding(rng: random.Random, form: Form) -> None:
    headers, body = form.parts[0]
    encoding = rng.choice([b"base64", b"quoted-printable", b"x-junk", b"gzip"])
    if encoding == b"base64":
        body = base64.encodebytes(body)
    header = rng.choice([b"Content-Transfer-Encoding: ", b"Content-Encoding: "])
    form.parts[0] = ([*headers, header + encoding], body)


def _bad_option(rng: random.Random, form: Form) -> None:
    form.parts.append(rng.choice([
        option_part("preset", b"\xff\xfe\xfd"),
        option_part("preset", b"f" * 5000),
        option_part("site", "instagram".encode("utf-16")),
        ([b'Content-Disposition: form-data; name="preset"',
          b"Content-Type: text/plain; charset=x-unknown"], b"fast"),
        option_part("", b"fast"),
        option_part("no_such_option", b"1"),
    ]))


def _charset_part(rng: random.Random, form: Form) -> None:
    form.charset = rng.choice([b"utf-8", b"latin-1", b"x" * 40, b"\xff\xfe", b"no-such"])


def _bare_newlines(rng: random.Random, form: Form) -> None:
    form.newline = b"\n"


def _junk_preamble(rng: random.Random, form: Form) -> None:
    form.preamble = rng.randbytes(rng.choice([1, 100])) + b"\r\n--" + form.boundary[:5] + b"\r\n"


def _mixed_type(rng: random.Random, form: Form) -> None:
    form.media_type = rng.choice(["multipart/mixed", "multipart/related", "multipart/x-junk"])


DEFECTS: tuple[Callable[[random.Random, Form], None], ...] = (
    _boundary_mismatch, _boundary_missing, _boundary_overlong, _boundary_invalid, _no_closing,
    _no_image, _duplicate_image, _duplicate_option, _huge_header, _many_headers, _junk_header,
    _no_disposition, _weird_name, _nested, _transfer_encoding, _bad_option, _charset_part,
    _bare_newlines, _junk_preamble, _mixed_type)
