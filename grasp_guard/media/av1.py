"""The frame size an AV1 sequence header declares (AV1 spec 5.5), read before decoding.

libavif decodes the AV1 frame at the size its sequence header says, whatever the AVIF
container's ``ispe`` claims: a pixel limit checked against ``ispe`` alone can be lied past.
"""

from __future__ import annotations

OBU_SEQUENCE_HEADER = 1


class _Bits:
    """Big-endian bit reader; reading past the end raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("AV1 sequence header truncated")
            value = (value << 1) | (self.data[byte] >> (7 - (self.pos & 7)) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.read(zeros) + (1 << zeros) - 1


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise ValueError("AV1 OBU size truncated")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise ValueError("AV1 OBU size longer than 8 bytes")


def _max_frame_size(bits: _Bits) -> tuple[int, int]:
    """(width, height) from a sequence_header_obu's payload."""
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)  # seq_level_idx[0]
    else:
        decoder_model = False
        buffer_delay_bits = 0
        if bits.read(1):  # timing_info_present_flag
            bits.read(32), bits.read(32)  # num_units_in_display_tick, time_scale
            if bits.read(1):  # equal_picture_interval
                bits.uvlc()
            decoder_model = bool(bits.read(1))
            if decoder_model:
                buffer_delay_bits = bits.read(5) + 1
                bits.read(32), bits.read(5), bits.read(5)
        display_delay = bool(bits.read(1))
        for _ in range(bits.read(5) + 1):  # operating points
            bits.read(12)  # operating_point_idc
            if bits.read(5) > 7:  # seq_level_idx
                bits.read(1)  # seq_tier
            if decoder_model and bits.read(1):
                bits.read(buffer_delay_bits), bits.read(buffer_delay_bits), bits.read(1)
            if display_delay and bits.read(1):
                bits.read(4)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


def frame_size(obus: bytes) -> tuple[int, int] | None:
    """The max frame (width, height) of the first sequence header among ``obus`` (OBUs with
    size fields, as ``av1C`` carries them and AVIF item data starts); None when none is there.

    Raises:
        ValueError: a sequence header or OBU that is cut short or malformed.
    """
    pos = 0
    while pos < len(obus):
        header = obus[pos]
        kind, extension, has_size = header >> 3 & 0xF, header >> 2 & 1, header >> 1 & 1
        pos += 1 + extension
        if not has_size:  # runs to the end of the data
            size = len(obus) - pos
        else:
            size, pos = _leb128(obus, pos)
        if pos + size > len(obus):
            raise ValueError("AV1 OBU runs past its data")
        if kind == OBU_SEQUENCE_HEADER:
            return _max_frame_size(_Bits(obus[pos : pos + size]))
        pos += size
    return None
