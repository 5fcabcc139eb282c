"""Reassembly of images split over several requests: which segments to hold, and when the
image is whole.

A pure state machine: no I/O, and no clock of its own (callers pass ``now``). An upload is
declared (X's INIT: total bytes and media type); its segments are held one by one, and the
image is whole when they arrived with indices 0, 1, ..., n-1 and their lengths add up to
the declared total. Anything else (a segment out of order, too many segments or bytes, the
proxy's memory bound, a close before the end, the hold time) abandons the upload: its held
segments are handed back, for the caller to send untouched or to drop, and every later
request of that upload hears why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from grasp_sdk.policy import ChunkedUpload

T = TypeVar("T")
State = Literal["collecting", "whole", "abandoned", "skipped"]


@dataclass(frozen=True)
class Held(Generic[T]):
    """One segment held back.

    Attributes:
        index: its index in the upload.
        data: its piece of the image.
        item: what the caller keeps with it (the request, to send later).
    """

    index: int
    data: bytes
    item: T


@dataclass(frozen=True)
class Hold:
    """The segment is held; the image is not whole yet."""

    received: int
    total_bytes: int


@dataclass(frozen=True)
class Whole(Generic[T]):
    """The image is whole: ``image`` is the segments' bytes in order, the last included."""

    image: bytes
    media_type: str
    segments: tuple[Held[T], ...]

    @property
    def lengths(self) -> tuple[int, ...]:
        """The segments' lengths, where the image is cut to send it again."""
        return tuple(len(s.data) for s in self.segments)


@dataclass(frozen=True)
class Abandon(Generic[T]):
    """The upload cannot be reassembled, for ``reason``.

    Attributes:
        reason: why, in words.
        released: the segments that were held (empty when it was abandoned earlier).
    """

    reason: str
    released: tuple[Held[T], ...] = ()


@dataclass(frozen=True)
class Skip:
    """The upload is not one to hold (too large, not an image, left alone): send it as is."""

    reason: str


Step = Hold | Whole[T] | Abandon[T] | Skip


@dataclass
class _Upload(Generic[T]):
    total_bytes: int
    media_type: str
    limits: ChunkedUpload
    updated: float
    state: State = "collecting"
    reason: str = ""
    held: list[Held[T]] = field(default_factory=list)
    first_held: float | None = None

    @property
    def received(self) -> int:
        return sum(len(s.data) for s in self.held)


class Reassembly(Generic[T]):
    """The uploads in progress, by media id.

    Args:
        max_held_bytes: the most segment bytes held at once, over every upload.
        max_uploads: the most uploads remembered; past it the oldest that hold nothing
            are forgotten.
    """

    def __init__(self, max_held_bytes: int, max_uploads: int = 1024) -> None:
        self.max_held_bytes = max_held_bytes
        self.max_uploads = max_uploads
        self.held_bytes = 0
        self._uploads: dict[str, _Upload[T]] = {}

    def __contains__(self, media_id: str) -> bool:
        return media_id in self._uploads

    def declare(self, media_id: str, total_bytes: int, media_type: str,
                limits: ChunkedUpload, now: float) -> Skip | None:
        """An upload begins; a :class:`Skip` when its segments will not be held."""
        self._forget_stale(now)
        if media_id in self._uploads and self._uploads[media_id].held:
            return Skip(f"media {media_id} was declared again while its segments are held")
        upload: _Upload[T] = _Upload(total_bytes, media_type, limits, now)
        if not media_type.lower().startswith("image/"):
            self._skip(upload, f"media_type {media_type or 'unknown'!r} is not an image")
        elif not 0 < total_bytes <= limits.max_total_bytes:
            self._skip(upload, f"total_bytes {total_bytes} is outside 1..{limits.max_total_bytes} "
                               "(chunked_upload max_total_bytes)")
        elif total_bytes > self.max_held_bytes:
            self._skip(upload, f"total_bytes {total_bytes} exceeds the proxy's "
                               f"{self.max_held_bytes}-byte bound on held segments")
        elif len(self._uploads) >= self.max_uploads:
            self._skip(upload, f"{self.max_uploads} uploads are in progress already")
        self._uploads[media_id] = upload
        return Skip(upload.reason) if upload.state == "skipped" else None

    def add(self, media_id: str, index: int, data: bytes, item: T, now: float) -> Step[T] | None:
        """Segment ``index`` of ``media_id`` arrived; None when no such upload was declared."""
        upload = self._uploads.get(media_id)
        if upload is None:
            return None
        upload.updated = now
        if upload.state == "skipped":
            return Skip(upload.reason)
        if upload.state == "abandoned":
            return Abandon(upload.reason)
        expected = len(upload.held)
        limits = upload.limits
        problem = None
        if upload.state == "whole":
            problem = f"segment {index} arrived after the image was complete"
        elif index != expected:
            problem = f"segment {index} arrived where segment {expected} was expected"
        elif expected >= limits.max_segments:
            problem = f"more than {limits.max_segments} segments (chunked_upload max_segments)"
        elif upload.received + len(data) > upload.total_bytes:
            problem = f"the segments add up to more than total_bytes {upload.total_bytes}"
        elif self.held_bytes + len(data) > self.max_held_bytes:
            problem = f"holding it would pass the proxy's {self.max_held_bytes}-byte bound"
        elif upload.first_held is not None and now - upload.first_held > limits.hold_s:
            problem = f"not complete within {limits.hold_s:g} s (chunked_upload hold_s)"
        if problem is not None:
            return self._abandon(upload, problem)
        upload.held.append(Held(index, data, item))
        self.held_bytes += len(data)
        if upload.first_held is None:
            upload.first_held = now
        received = upload.received
        if received < upload.total_bytes:
            return Hold(received, upload.total_bytes)
        segments = tuple(upload.held)
        self._release(upload)
        upload.state = "whole"
        return Whole(b"".join(s.data for s in segments), upload.media_type, segments)

    def close(self, media_id: str) -> Abandon[T] | None:
        """The client closed the upload (FINALIZE): forget it; an :class:`Abandon` unless it
        was whole, skipped or unknown."""
        upload = self._uploads.pop(media_id, None)
        if upload is None or upload.state in ("whole", "skipped"):
            return None
        if upload.state == "abandoned":
            return Abandon(upload.reason)
        return self._abandon(upload, f"closed after {upload.received} of {upload.total_bytes} "
                                     "bytes (incomplete)")

    def verdict(self, media_id: str) -> Skip | Abandon[T] | None:
        """What stands for an upload skipped or abandoned earlier; None for any other."""
        upload = self._uploads.get(media_id)
        if upload is None or upload.state in ("collecting", "whole"):
            return None
        return Skip(upload.reason) if upload.state == "skipped" else Abandon(upload.reason)

    def abandon(self, media_id: str, reason: str) -> Abandon[T]:
        """Abandon the upload for ``reason`` (the whole image could not be protected)."""
        upload = self._uploads.get(media_id)
        return Abandon(reason) if upload is None else self._abandon(upload, reason)

    def leave(self, media_id: str, reason: str) -> tuple[Held[T], ...]:
        """Leave the upload untouched for ``reason``: its held segments, handed back."""
        upload = self._uploads.get(media_id)
        if upload is None:
            return ()
        released = tuple(upload.held)
        self._release(upload)
        self._skip(upload, reason)
        return released

    def expire(self, media_id: str, now: float) -> Abandon[T] | None:
        """Abandon the upload if it holds segments for longer than its ``hold_s``."""
        upload = self._uploads.get(media_id)
        if upload is None or upload.first_held is None or upload.state != "collecting":
            return None
        if now - upload.first_held < upload.limits.hold_s:
            return None
        return self._abandon(upload, f"not complete within {upload.limits.hold_s:g} s "
                                     "(chunked_upload hold_s)")

    def pending(self) -> Iterator[str]:
        """The media ids whose segments are held."""
        return (media_id for media_id, upload in self._uploads.items() if upload.held)

    def _abandon(self, upload: _Upload[T], reason: str) -> Abandon[T]:
        released = tuple(upload.held)
        self._release(upload)
        upload.state, upload.reason = "abandoned", reason
        return Abandon(reason, released)

    def _skip(self, upload: _Upload[T], reason: str) -> None:
        upload.state, upload.reason = "skipped", reason

    def _release(self, upload: _Upload[T]) -> None:
        self.held_bytes -= upload.received
        upload.held = []

    def _forget_stale(self, now: float) -> None:
        """Forget uploads that hold nothing and were last heard of more than ``hold_s`` ago;
        past ``max_uploads``, the oldest that hold nothing."""
        idle = [media_id for media_id, u in self._uploads.items() if not u.held]
        for media_id in idle:
            upload = self._uploads[media_id]
            if now - upload.updated > upload.limits.hold_s:
                del self._uploads[media_id]
        idle = [media_id for media_id in idle if media_id in self._uploads]
        while len(self._uploads) >= self.max_uploads and idle:
            del self._uploads[idle.pop(0)]
