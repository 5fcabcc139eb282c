"""XMP packets: remove the properties that embed images or point at dropped data.

Google camera files keep the unprocessed photo (``GImage:Data``) and the depth map
(``GDepth:Data``) in XMP, Photoshop keeps ``xmp:Thumbnails`` (``xmpGImg:image``), and motion
photos and Ultra HDR photos point at a video or gain map appended after the JPEG (which the
re-encode drops). A packet without any of them is returned byte-identical.
"""

from __future__ import annotations

import re
from functools import lru_cache

# The properties removed, by namespace: a packet may bind any prefix to it (Photoshop CS
# wrote ``xapGImg:image`` for what later versions write ``xmpGImg:image``), so the prefixes
# a packet declares are matched as well as the usual one. Motion photos' and Ultra HDR's
# directories describe the video and gain map that the re-encode drops.
_NAMESPACES: dict[bytes, tuple[bytes, tuple[bytes, ...]]] = {
    b"http://ns.adobe.com/xap/1.0/g/img/": (b"xmpGImg", (b"image",)),
    b"http://ns.google.com/photos/1.0/image/": (b"GImage", (b"Data",)),
    b"http://ns.google.com/photos/1.0/depthmap/": (b"GDepth", (b"Data", b"Confidence")),
    b"http://ns.adobe.com/xmp/note/": (b"xmpNote", (b"HasExtendedXMP",)),
    b"http://ns.google.com/photos/1.0/camera/": (b"GCamera", (
        b"MicroVideo", b"MicroVideoVersion", b"MicroVideoOffset",
        b"MicroVideoPresentationTimestampUs", b"MotionPhoto", b"MotionPhotoVersion",
        b"MotionPhotoPresentationTimestampUs")),
    b"http://ns.google.com/photos/1.0/container/": (b"Container", (b"Directory",)),
    b"http://ns.adobe.com/hdr-gain-map/1.0/": (b"hdrgm", (b"Version",)),
}  # fmt: skip
_XMLNS = re.compile(rb"xmlns:([\w.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


# More prefixes bound to the namespaces above than any writer uses: a packet made to cost
# time (each prefix is a pass over it) is dropped whole.
MAX_PREFIXES = 16


@lru_cache(maxsize=256)
def _patterns(name: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes]]:
    n = re.escape(name)
    return (
        re.compile(rb"\s" + n + rb"\s*=\s*(?:\"[^\"]*\"|'[^']*')"),  # attribute form
        re.compile(rb"<" + n + rb"(?:\s[^>]*)?/>"),  # empty element
        re.compile(rb"<" + n + rb"(?:\s[^>]*)?>"),  # an element's start tag
    )


def _without_elements(packet: bytes, name: bytes, start: re.Pattern[bytes]) -> bytes:
    """``packet`` without the elements ``name``, start tag to end tag, in one pass (a lazy
    ``.*?`` regex rescans the rest of the packet from every start tag that never closes)."""
    out, pos = bytearray(), 0
    while (found := start.search(packet, pos)) is not None:
        close = packet.find(b"</" + name, found.end())
        end = -1 if close < 0 else packet.find(b">", close)
        if end < 0:
            break
        out += packet[pos : found.start()]
        pos = end + 1
    return bytes(out + packet[pos:])


def _names(packet: bytes) -> list[bytes] | None:
    """The qualified names to remove, under every prefix the packet binds to their
    namespace; None past ``MAX_PREFIXES`` such prefixes."""
    bound: dict[bytes, set[bytes]] = {}
    for prefix, double, single in _XMLNS.findall(packet):
        bound.setdefault(double or single, set()).add(prefix)
    if sum(len(bound.get(uri, ())) for uri in _NAMESPACES) > MAX_PREFIXES:
        return None
    return [prefix + b":" + local
            for uri, (usual, locals_) in _NAMESPACES.items()
            for prefix in sorted(bound.get(uri, set()) | {usual})
            for local in locals_]


def sanitize(packet: bytes) -> tuple[bytes, list[str]]:
    """The packet without image-carrying properties, and the names of those removed."""
    names = _names(packet)
    if names is None:
        return b"", [f"the whole packet (over {MAX_PREFIXES} prefixes for image namespaces)"]
    removed = []
    for name in names:
        if name not in packet:
            continue
        before = packet
        attribute, empty, start = _patterns(name)
        packet = _without_elements(empty.sub(b"", attribute.sub(b"", packet)), name, start)
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
