"""Images found inside a request body, and the byte edits that put protected ones back.

Every body format (multipart, raw, base64 in JSON or in a form) reduces to the same thing:
byte ranges of the original body to replace. Everything outside them stays identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple


class Edit(NamedTuple):
    """Replace ``body[start:end]`` with ``data``."""

    start: int
    end: int
    data: bytes


@dataclass(frozen=True)
class ImageSlot:
    """One image inside a body.

    Attributes:
        location: where it is, for reports (``multipart part 'media'``, ``json $.avatar``).
        data: the image bytes (decoded, when the body carries them encoded).
        media_type: the image type sniffed from ``data``.
        edits: the body edits that put a replacement image in this slot.
        exact_size: whether a replacement must be as long as ``data`` (base64 text that does
            not show whether its writer pads: a strict decoder of either kind reads only that).
    """

    location: str
    data: bytes
    media_type: str
    edits: Callable[[bytes], list[Edit]]
    exact_size: bool = False


def apply_edits(body: bytes, edits: Iterable[Edit]) -> bytes:
    """``body`` with non-overlapping ``edits`` applied; raises ValueError if they overlap."""
    out = []
    pos = 0
    for edit in sorted(edits):
        if edit.start < pos or edit.end < edit.start or edit.end > len(body):
            raise ValueError(f"bad or overlapping edit {edit.start}:{edit.end}")
        out.append(body[pos:edit.start])
        out.append(edit.data)
        pos = edit.end
    out.append(body[pos:])
    return b"".join(out)


class MalformedBody(ValueError):
    """A body that does not parse as its declared format; the upload is left untouched."""


class PinnedBody(ValueError):
    """A body that carries a checksum of its image the SDK cannot recompute (a form's
    checksum field, a part's Content-MD5); the upload is left untouched."""
