import base64
import time

import pytest
from _media_builders import thumbnail_jpeg, xmp_packet

from grasp_guard.media import xmp


@pytest.mark.parametrize(
    ("extra", "removed"),
    [
        (b' GImage:Data="QUJD" GImage:Mime="image/jpeg"', ["GImage:Data"]),
        (b" GDepth:Data='REVQ' GDepth:Format=\"RangeInverse\"", ["GDepth:Data"]),
        (
            b' xmpNote:HasExtendedXMP="0123ABCD" GCamera:MicroVideo="1" GCamera:MicroVideoOffset="4242"',
            ["xmpNote:HasExtendedXMP", "GCamera:MicroVideo", "GCamera:MicroVideoOffset"],
        ),
        (
            b'><xmp:Thumbnails><rdf:Alt><rdf:li><xmpGImg:image>/9j/4AAQ\n/9k=</xmpGImg:image></rdf:li></rdf:Alt></xmp:Thumbnails></rdf:Description><rdf:Description rdf:about=""',
            ["xmpGImg:image"],
        ),
        (  # Photoshop CS and earlier: another prefix for the same namespace
            b' xmlns:xapGImg="http://ns.adobe.com/xap/1.0/g/img/"><xap:Thumbnails><rdf:Alt><rdf:li><xapGImg:image>/9j/4AAQ\n/9k=</xapGImg:image></rdf:li></rdf:Alt></xap:Thumbnails></rdf:Description><rdf:Description rdf:about=""',
            ["xapGImg:image"],
        ),
        (  # a motion photo's and an Ultra HDR photo's pointers at what the re-encode drops
            b' hdrgm:Version="1.0"><Container:Directory><rdf:Seq><rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Length="4242"/></rdf:li></rdf:Seq></Container:Directory></rdf:Description><rdf:Description rdf:about=""',
            ["Container:Directory", "hdrgm:Version"],
        ),
    ],
)
def test_sanitize_removes_image_carrying_properties(extra: bytes, removed: list[str]) -> None:
    packet = xmp_packet(extra)
    clean, names = xmp.sanitize(packet)
    assert names == removed
    for name in removed:
        assert name.encode() not in clean
    assert b'dc:format="image/jpeg"' in clean and clean.endswith(b'<?xpacket end="w"?>')
    assert b"GImage:Mime" in clean or b"GImage:Mime" not in packet
    assert xmp.notes(names) and all(n in xmp.notes(names)[0] for n in removed)


def test_clean_packet_is_returned_byte_identical() -> None:
    packet = xmp_packet(b' xmp:Rating="5"')
    assert xmp.sanitize(packet) == (packet, [])
    assert xmp.notes([]) == []


def test_a_packet_made_to_cost_time_does_not() -> None:
    """Start tags that never end, or never close, are one pass, not one per tag (the packet
    is dropped: what follows them may be the image); a flood of prefixes bound to the image
    namespaces drops the packet whole."""
    started = time.perf_counter()
    for flood in (b"<GImage:Data>" * 20_000, b"<GImage:Data " * 20_000):
        clean, names = xmp.sanitize(xmp_packet(b">" + flood + b"</rdf:Description><rdf:Description"))
        assert clean == b"" and "the whole packet" in names[0]
    prefixes = b"".join(b' xmlns:p%d="http://ns.google.com/photos/1.0/image/"' % i for i in range(17))
    clean, names = xmp.sanitize(xmp_packet(prefixes + b' p16:Data="QUJD"'))
    assert time.perf_counter() - started < 1.0
    assert clean == b"" and "the whole packet" in names[0]


@pytest.mark.parametrize("extra", [
    # the property in the default namespace, as valid RDF/XML as a prefixed one
    b'><Data xmlns="http://ns.google.com/photos/1.0/image/">QUJD</Data></rdf:Description><rdf:Description',
    # an element that never closes (a truncated packet): the image runs to its end
    b'><GImage:Data>QUJD',
    # one inside another: the inner end tag is not the outer one's
    b'><GImage:Data><GImage:Data>X</GImage:Data>QUJD</GImage:Data></rdf:Description><rdf:Description',
])
def test_an_image_that_cannot_be_cut_out_surely_drops_the_packet(extra: bytes) -> None:
    clean, names = xmp.sanitize(xmp_packet(extra))
    assert clean == b"" and b"QUJD" not in clean and "the whole packet" in names[0]


def test_a_longer_name_is_not_taken_for_a_property() -> None:
    packet = xmp_packet(b' GCamera:MicroVideoVersion="1" GCamera:MicroVideo="1"')
    clean, names = xmp.sanitize(packet)
    assert names == ["GCamera:MicroVideo", "GCamera:MicroVideoVersion"]
    assert b"MicroVideo" not in clean and clean.endswith(b'<?xpacket end="w"?>')


def test_a_name_that_only_ends_in_a_propertys_keeps_the_packet() -> None:
    packet = xmp_packet(b' xGImage:Data="not the image" GImage:Data="QUJD"')
    clean, names = xmp.sanitize(packet)
    assert names == ["GImage:Data"] and b"QUJD" not in clean and b"xGImage:Data" in clean


@pytest.mark.parametrize(("packet", "why"), [
    (xmp_packet(b' xmp:Rating="4"').decode().encode("utf-16-be"), "UTF-16 or UTF-32"),
    (xmp_packet(b' dc:title="\xe9t\xe9"'), "not UTF-8"),
    (xmp_packet(b' xmlns:q="http://ns.adobe.com/xap/1.0/g/img&#47;"><q:image>'
                + base64.b64encode(thumbnail_jpeg()) + b"</q:image><x:y"), "an image left"),
])
def test_a_packet_it_cannot_read_for_images_or_one_still_holding_one_is_dropped(
        packet: bytes, why: str) -> None:
    cleaned, removed = xmp.sanitize(packet)
    assert cleaned == b"" and why in removed[0]


def test_a_packet_without_images_is_kept_byte_identical() -> None:
    packet = xmp_packet(b' xmp:Rating="4" dc:description="caf\xc3\xa9"')
    assert xmp.sanitize(packet) == (packet, [])
    assert xmp.sanitize(packet + b"\x00") == (packet + b"\x00", [])  # a writer's terminator
