"""Metadata-preserving codec: decode an upload to upright RGB, re-encode it the way it came.

Nothing touches the disk. See ``/work/shared/design/UPLOADS.md`` ("Metadata rules").
"""

from .budget import SIZE_MODES, SizeMode
from .codec import DEFAULT_MAX_PIXELS, decode, encode
from .image import DecodedImage
from .sniff import sniff_format

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SIZE_MODES",
    "DecodedImage",
    "SizeMode",
    "decode",
    "encode",
    "sniff_format",
]
