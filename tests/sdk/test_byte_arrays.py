"""Images carried as JSON arrays of byte values (Dart, JavaScript, Gson, kotlinx)."""

from __future__ import annotations

import base64
import json

import pytest
from grasp_sdk.base64_fields import find_json_images
from grasp_sdk.splice import MalformedBody, apply_edits

NEW = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2  # the protected image's stand-in


def _signed(data: bytes) -> list[int]:
    return [b - 256 if b > 127 else b for b in data]


@pytest.mark.parametrize("dumps", [
    json.dumps,
    lambda o: json.dumps(o, separators=(",", ":")),  # JSON.stringify, Gson, Dart
    lambda o: json.dumps(o, indent=2),
])  # fmt: skip
@pytest.mark.parametrize("signed", [False, True])
def test_an_image_as_byte_values_is_found_and_replaced_the_same_way(
        jpeg: bytes, dumps, signed: bool) -> None:
    values = _signed(jpeg) if signed else list(jpeg)
    body = dumps({"caption": "me", "photo": values, "sizes": list(range(40))}).encode()
    (slot,) = find_json_images(body)
    assert (slot.location, slot.data, slot.media_type) == ("json $.photo", jpeg, "image/jpeg")
    new_body = apply_edits(body, slot.edits(NEW))
    expected = dumps({"caption": "me", "photo": _signed(NEW) if signed else list(NEW),
                      "sizes": list(range(40))}).encode()
    assert new_body == expected  # the values, signed or not, and the spacing as written


@pytest.mark.parametrize("values", [
    list(range(200)),  # numbers, no image
    [255, 216, 255, 224] + [0] * 20 + [256],  # a value past a byte
    [-1, -40, -1, -32] + [0] * 20 + [200],  # signed and past 127
    [255, 216, 255, 224] + [0] * 20 + [1.5],  # a fraction
])  # fmt: skip
def test_arrays_that_are_no_image_are_left(values: list) -> None:
    assert find_json_images(json.dumps({"photo": values}).encode()) == []


def test_a_byte_array_image_beside_base64_ones(jpeg: bytes, png: bytes) -> None:
    body = json.dumps({"a": list(png), "b": [base64.b64encode(jpeg).decode(), 1]}).encode()
    assert [s.location for s in find_json_images(body)] == ["json $.a", "json $.b[0]"]


@pytest.mark.parametrize("body", [b'{"a": [1, NaN]}', b'{"a": [255, 216, 255, 224, 0, Infinity]}',
                                  b'{"a": [1, 2,]}', b'{"a": [1 2]}'])
def test_an_array_that_is_no_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        find_json_images(body)
