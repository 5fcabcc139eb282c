"""Images carried as JSON arrays of byte values: ``[255, 216, 255, …]``, as Dart's
``jsonEncode`` writes a ``Uint8List`` and ``JSON.stringify(Array.from(bytes))`` writes a
``Uint8Array``, or signed ``[-1, -40, -1, …]``, as Gson and kotlinx write a ``byte[]``. A
replacement is written the same way: signed or not, with the array's own spacing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from grasp_sdk.sniff import byte_values, image_type

_INTEGER = r"-?(?:0|[1-9]\d{0,2})"
# The first 16 values: enough for image_type, and the only part of an array not an image's
# that is read here (the generic JSON scan reads the rest).
_HEAD = re.compile(rf"\[(\s*){_INTEGER}(\s*,\s*){_INTEGER}(?:\s*,\s*{_INTEGER}){{14}}")
_VALUE = re.compile(r"-?\d+")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ByteArray:
    """How one image was written as a JSON array, to write its replacement the same way.

    Attributes:
        signed: byte values from -128 to 127 (Java's ``byte``) rather than 0 to 255.
        opening: the whitespace after ``[``.
        separator: what stands between two values (``,`` or ``, ``; a newline and an
            indent when pretty-printed), as between the first two.
        closing: the whitespace before ``]``.
    """

    signed: bool
    opening: str
    separator: str
    closing: str

    def encode(self, data: bytes) -> str:
        """``data`` as a JSON array in this style."""
        values = (b - 256 if self.signed and b > 127 else b for b in data)
        return f"[{self.opening}{self.separator.join(map(str, values))}{self.closing}]"


def image_array_at(text: str, i: int) -> tuple[int, ByteArray, bytes] | None:
    """The end, style and bytes of the JSON array at ``text[i]`` when it is an image's byte
    values; None when it is not (its first 16 values are no image's start, or a value is
    no byte). Raises ValueError where an image's array is not valid JSON."""
    head = _HEAD.match(text, i)
    if head is None or image_type(byte_values([int(v) for v in _VALUE.findall(head.group())])) is None:
        return None
    values, end = _DECODER.raw_decode(text, i)
    if not all(type(v) is int for v in values):
        return None
    data = byte_values(values)
    close = end - 1
    while text[close - 1] in " \t\r\n":
        close -= 1
    style = ByteArray(min(values) < 0, head.group(1), head.group(2), text[close : end - 1])
    return (end, style, data) if data else None
