"""XMP packets: remove the properties that embed images or point at dropped data.

Google camera files keep the unprocessed photo (``GImage:Data``) and the depth map
(``GDepth:Data``) in XMP, Photoshop keeps ``xmp:Thumbnails`` (``xmpGImg:image``), and motion
photos point at a video appended after the JPEG (which the re-encode drops). A packet without
any of them is returned byte-identical.
"""

from __future__ import annotations

import re

_PROPERTIES = (
    b"xmpGImg:image",
    b"GImage:Data",
    b"GDepth:Data",
    b"GDepth:Confidence",
    b"xmpNote:HasExtendedXMP",
    b"GCamera:MicroVideo",
    b"GCamera:MicroVideoVersion",
    b"GCamera:MicroVideoOffset",
    b"GCamera:MicroVideoPresentationTimestampUs",
    b"GCamera:MotionPhoto",
    b"GCamera:MotionPhotoVersion",
    b"GCamera:MotionPhotoPresentationTimestampUs",
)


def _patterns(name: bytes) -> tuple[re.Pattern[bytes], ...]:
    n = re.escape(name)
    return (
        re.compile(rb"\s" + n + rb"\s*=\s*(?:\"[^\"]*\"|'[^']*')"),  # attribute form
        re.compile(rb"<" + n + rb"(?:\s[^>]*)?/>"),  # empty element
        re.compile(rb"<" + n + rb"(?:\s[^>]*)?>.*?</" + n + rb"\s*>", re.DOTALL),  # element
    )


_REMOVALS = tuple((name, _patterns(name)) for name in _PROPERTIES)


def sanitize(packet: bytes) -> tuple[bytes, list[str]]:
    """The packet without image-carrying properties, and the names of those removed."""
    removed = []
    for name, patterns in _REMOVALS:
        if name not in packet:
            continue
        before = packet
        for pattern in patterns:
            packet = pattern.sub(b"", packet)
        if packet != before:
            removed.append(name.decode())
    return packet, removed


def notes(removed: list[str]) -> list[str]:
    """Report lines for :func:`sanitize`'s removals."""
    return (
        [f"XMP properties removed (embedded image or dropped data): {', '.join(removed)}"]
        if removed
        else []
    )
