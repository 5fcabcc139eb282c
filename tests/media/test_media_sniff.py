import io

import pytest
from PIL import Image

from grasp_guard.media import sniff_format
from grasp_guard.media.sniff import holds_image


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\xff\xd8\xff\xe1\x00\x10Exif", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", "HEIF"),
        (b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00mif1heix", "HEIF"),
        (b"\x00\x00\x00\x18ftypheim\x00\x00\x00\x00mif1heim", "HEIF"),
        (b"\x00\x00\x00\x18ftypheis\x00\x00\x00\x00mif1heis", "HEIF"),
        (b"\x00\x00\x00\x18ftypmsf1\x00\x00\x00\x00msf1hevc", "HEIF"),
        (b"\x00\x00\x00\x18ftyphevc\x00\x00\x00\x00msf1hevc", "HEIF"),
        (b"\x00\x00\x00\x1cftypMiHE\x00\x00\x00\x00MiHEmiafheic", "HEIF"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
        (b"\xff\x0a\xfa\x7f", "JXL"),
        (b"", None),
        (b"hello world", None),
        (b"\xff\xd8", None),
    ],
)
def test_sniff_format(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


def _tiny(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_an_image_inside_metadata_is_found(fmt: str) -> None:
    assert holds_image(b"vendor preview:" + _tiny(fmt) + b"\x00tail")


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # a motion photo's video
        b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00",
    ],
)
def test_a_container_inside_metadata_is_found(blob: bytes) -> None:
    assert holds_image(b"prefix" + blob)


@pytest.mark.parametrize(
    "blob",
    [b"", b"harmless vendor data", b"\xff\xd8\xff not a jpeg", b"RIFF\x10\x00\x00\x00WAVE",
     b"<dc:subject>giftypes, filetypes</dc:subject>"],
)
def test_plain_metadata_holds_no_image(blob: bytes) -> None:
    assert not holds_image(blob)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP"])
def test_an_uncompressed_image_file_inside_metadata_is_found(fmt: str) -> None:
    assert holds_image(b"Kodak\x00" + _tiny(fmt) + b"\x00tail")


def test_a_tiff_header_naming_no_pixels_is_no_image() -> None:
    # an EXIF block, or a maker note with a TIFF header of its own (Nikon's)
    exif = Image.Exif()
    exif[0x010F] = "GraspCam"
    assert not holds_image(b"Nikon\x00\x02\x10\x00\x00" + exif.tobytes())
    assert not holds_image(b"MM\x00*\x00\x00\x01\x00")  # its directory out of the blob
