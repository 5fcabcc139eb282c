"""XMP packets: remove the properties that embed images or point at dropped data.

Google camera files keep the unprocessed photo (``GImage:Data``) and the depth map
(``GDepth:Data``) in XMP, Photoshop keeps ``xmp:Thumbnails`` (``xmpGImg:image``), and motion
photos and Ultra HDR photos point at a video or gain map appended after the JPEG (which the
re-encode drops). A packet without any of them is returned byte-identical.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .sniff import OpaqueAllowance, holds_image

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
_DEFAULT_XMLNS = re.compile(rb"xmlns\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


# More prefixes bound to the namespaces above than any writer uses: a packet made to cost
# time (each prefix is a pass over it) is dropped whole.
MAX_PREFIXES = 16
# Bytes scanned for the names to remove, in all (three passes over the packet for each name
# in it): past it, a packet made to cost time is dropped whole. A camera's few names in a
# Photoshop document's megabytes of history stay well under it.
MAX_SCANNED = 64 << 20


@lru_cache(maxsize=256)
def _whole_name(name: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![\w.:-])" + re.escape(name) + rb"(?![\w.-])")  # a name of its own


@lru_cache(maxsize=256)
def _attribute(name: bytes) -> re.Pattern[bytes]:
    # each value's scan stops at the next quote of its kind: linear however many there are
    return re.compile(rb"\s" + re.escape(name) + rb"\s*=\s*(?:\"[^\"]*\"|'[^']*')")


def _without_elements(packet: bytes, name: bytes) -> bytes | None:
    """``packet`` without the elements ``name`` (empty, or start tag to end tag), in one
    linear scan; None when one never closes (what follows it may be the image)."""
    out, pos, opening = bytearray(), 0, b"<" + name
    while (at := packet.find(opening, pos)) >= 0:
        after = at + len(opening)
        if packet[after : after + 1] not in (b" ", b"\t", b"\r", b"\n", b"/", b">"):
            out += packet[pos:after]  # a longer name, or the packet's end
            pos = after
            continue
        end = packet.find(b">", after)
        if end < 0:
            return None
        if packet[end - 1 : end] != b"/":  # a start tag: to its end tag
            close = packet.find(b"</" + name, end)
            end = -1 if close < 0 else packet.find(b">", close)
            if end < 0:
                return None
        out += packet[pos:at]
        pos = end + 1
    return bytes(out + packet[pos:])


def _default_namespaces(packet: bytes) -> set[bytes]:
    """The namespaces the packet binds as the default one (``xmlns="..."``)."""
    return {double or single for double, single in _DEFAULT_XMLNS.findall(packet)}


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


def sanitize(packet: bytes, allowance: OpaqueAllowance | None = None) -> tuple[bytes, list[str]]:
    """The packet without image-carrying properties, and the names of those removed. The
    packet is dropped whole (``b""``) where they cannot be removed with certainty: a packet
    not in UTF-8 (matched as bytes, it would hide them), an image namespace bound as the
    default one, a property that never closes, one left after removal, more prefixes than
    :data:`MAX_PREFIXES`, or an image still in the packet (a namespace written with a
    character reference, a property of a namespace not listed). Hex and base64 runs past
    the file's ``allowance`` (the packet's own where None) are cut from the values that
    hold them, and control bytes past it drop the packet."""
    try:
        packet.decode("utf-8")
    except UnicodeDecodeError:
        return b"", ["the whole packet (not UTF-8: it cannot be read for images)"]
    if b"\x00" in packet.rstrip(b"\x00"):  # no XML has one; UTF-16 text of ASCII does
        return b"", ["the whole packet (UTF-16 or UTF-32: it cannot be read for images)"]
    cleaned, removed = _without_image_properties(packet)
    if cleaned and holds_image(cleaned):
        return b"", ["the whole packet (an image left in it)"]
    readable = (allowance or OpaqueAllowance()).readable(cleaned)
    if readable is None:
        return b"", ["the whole packet (binary data in it, which may be the original's pixels)"]
    if readable != cleaned:
        removed.append("hex or base64 data (it may be the original's pixels)")
    return readable, removed


def _without_image_properties(packet: bytes) -> tuple[bytes, list[str]]:
    """:func:`sanitize` of a UTF-8 packet, but for the images it may still hold."""
    names = _names(packet)
    if names is None:
        return b"", [f"the whole packet (over {MAX_PREFIXES} prefixes for image namespaces)"]
    if any(uri in _NAMESPACES for uri in _default_namespaces(packet)):
        return b"", ["the whole packet (an image namespace bound as the default one)"]
    present = [name for name in names if name in packet]
    if 3 * len(present) * len(packet) > MAX_SCANNED:
        return b"", [(f"the whole packet ({len(present)} image properties in {len(packet)} bytes: "
                     "too costly to clean)")]
    removed = []
    for name in present:
        cleaned = _without_elements(_attribute(name).sub(b"", packet), name)
        if cleaned is None or _whole_name(name).search(cleaned):
            return b"", [f"the whole packet ({name.decode(errors='replace')} unclosed or left)"]
        if cleaned != packet:
            removed.append(name.decode())
        packet = cleaned
    return packet, removed


def notes(removed: list[str]) -> list[str]:
    """Report lines for :func:`sanitize`'s removals."""
    return (
        [f"XMP properties removed (embedded image or dropped data): {', '.join(removed)}"]
        if removed
        else []
    )
