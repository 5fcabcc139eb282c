"""ICC colour profiles checked for what they may hide: a profile is carried only when it reads
as one (its size, ``acsp`` signature and tag table in bounds) and holds no image, and the
bytes its registered tags do not account for (gaps, private tags) count against the file's
:class:`OpaqueAllowance`. The data of registered tags is not checked: it is colour."""

from __future__ import annotations

from .sniff import OpaqueAllowance, holds_image

HEADER = 128
MAX_TAGS = 1024  # profiles hold tens; a printer's a few hundred at most
_ALIGNMENT = 3  # tags start on 4-byte boundaries: up to 3 padding bytes between them
# The tag signatures of ICC.1 (v4.4, and v2's since dropped); any other is a private tag.
_REGISTERED = frozenset({
    b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"B2D0", b"B2D1", b"B2D2", b"B2D3",
    b"D2B0", b"D2B1", b"D2B2", b"D2B3", b"bXYZ", b"bTRC", b"calt", b"targ", b"chad", b"chrm",
    b"cicp", b"clro", b"clrt", b"clot", b"ciis", b"cprt", b"dmnd", b"dmdd", b"gamt", b"kTRC",
    b"gXYZ", b"gTRC", b"lumi", b"meas", b"meta", b"wtpt", b"ncl2", b"resp", b"rig0", b"pre0",
    b"pre1", b"pre2", b"desc", b"pseq", b"psid", b"rXYZ", b"rTRC", b"rig2", b"tech", b"vued",
    b"view", b"bkpt", b"crdi", b"devs", b"ncol", b"psd0", b"psd1", b"psd2", b"psd3", b"ps2s",
    b"ps2i", b"scrd", b"scrn", b"bfd ",
})  # fmt: skip


def unaccounted(profile: bytes) -> int | None:
    """How many bytes of ``profile`` lie outside its header, tag table and registered tags
    (alignment padding aside; a private tag's bytes, and bytes past its stated size,
    included); None when it is not a profile."""
    if len(profile) < HEADER + 4 or profile[36:40] != b"acsp":
        return None
    size = int.from_bytes(profile[0:4], "big")
    count = int.from_bytes(profile[HEADER : HEADER + 4], "big")
    table_end = HEADER + 4 + 12 * count
    if not table_end <= size <= len(profile) or count > MAX_TAGS:
        return None
    spans = [(0, table_end)]
    for entry in range(HEADER + 4, table_end, 12):
        offset = int.from_bytes(profile[entry + 4 : entry + 8], "big")
        length = int.from_bytes(profile[entry + 8 : entry + 12], "big")
        if offset < table_end or offset + length > size:
            return None
        if profile[entry : entry + 4] in _REGISTERED:
            spans.append((offset, offset + length))
    gaps, covered = 0, 0
    for start, end in sorted(spans):
        gaps += max(0, start - covered - _ALIGNMENT)
        covered = max(covered, end)
    gaps += max(0, size - covered - _ALIGNMENT)
    return gaps + len(profile) - size


def refusal(profile: bytes, allowance: OpaqueAllowance) -> str | None:
    """Why ``profile`` is not carried, or None when it is (its unaccounted bytes are then
    spent from ``allowance``)."""
    extra = unaccounted(profile)
    if extra is None:
        return "ICC profile dropped: it does not read as one, so it may hold the original's pixels"
    if holds_image(profile):
        return "ICC profile dropped: it holds an image"
    if not allowance.spend(extra):
        return f"ICC profile dropped: {extra} bytes in it belong to no registered tag"
    return None


def carried(profile: bytes | None, allowance: OpaqueAllowance, notes: list[str]) -> bytes | None:
    """``profile`` if it is carried (:func:`refusal`), else None with a note saying why."""
    reason = refusal(profile, allowance) if profile else None
    if reason:
        notes.append(reason)
        return None
    return profile
