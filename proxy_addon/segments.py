"""Reassembly of images split over several requests: which segments to hold, when the
image is whole, and what a segment sent again gets once the image was protected.

A pure state machine: no I/O, and no clock of its own (callers pass ``now``). An upload is
declared (X's INIT: total bytes and media type); its segments are held one by one, in any
order, and the image is whole when their lengths add up to the declared total and their
indices run without a gap from 0 (or from 1, as some X API v2 clients count). Anything
else (too many segments or bytes, other bytes for an index already held, the proxy's
memory bound, a close before the end, the hold time) abandons the upload: its held
segments are handed back, for the caller to send untouched or to drop, and every later
request of that upload hears why.

Once the whole image is protected, its protected pieces are kept for the hold time (and
within the memory bound): a segment sent again with its original bytes (a client's retry)
gets its protected piece, so original bytes never overwrite a protected segment on the
site. Finished uploads are remembered (without bytes) until the count bound pushes them
out, so that a late retry is still recognised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from grasp_sdk.policy import ChunkedUpload

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
State = Literal["collecting", "whole", "protected", "abandoned", "skipped"]
#: The index the first segment may have: X counts from 0, some v2 clients from 1.
FIRST_INDICES = (0, 1)


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
class Again:
    """A segment held already arrived again with the same bytes: answer it as before."""

    index: int


@dataclass(frozen=True)
class Whole(Generic[T]):
    """The image is whole: ``image`` is the segments' bytes in index order.

    The caller protects it, then calls :meth:`Reassembly.protected` (or ``abandon`` /
    ``leave``); until then its segments stay held.
    """

    image: bytes
    media_type: str
    segments: tuple[Held[T], ...]

    @property
    def lengths(self) -> tuple[int, ...]:
        """The segments' lengths, where the image is cut to send it again."""
        return tuple(len(s.data) for s in self.segments)


@dataclass(frozen=True)
class Resend:
    """A segment of a protected image arrived again with its original bytes: send it with
    ``data``, its protected piece (of the same length)."""

    index: int
    data: bytes


@dataclass(frozen=True)
class Reject:
    """This request cannot be served as the upload stands, for ``reason`` (the upload
    itself is not abandoned)."""

    reason: str


@dataclass(frozen=True)
class Abandon(Generic[T]):
    """The upload cannot be reassembled, for ``reason``.

    Attributes:
        reason: why, in words.
        released: the segments that were held, in index order (empty when it was
            abandoned earlier).
    """

    reason: str
    released: tuple[Held[T], ...] = ()


@dataclass(frozen=True)
class Skip:
    """The upload is not one to hold (too large, not an image, left alone): send it as is,
    unless it is an image the proxy cannot protect and the site blocks what it cannot.

    Attributes:
        reason: why, in words.
        unprotected: whether it is an image skipped unprotected (too large to hold, too many
            uploads at once), not one with nothing to protect (no face, not an image).
    """

    reason: str
    unprotected: bool = False


Step = Hold | Again | Whole[T] | Resend | Reject | Abandon[T] | Skip


@dataclass
class _Upload(Generic[T]):
    total_bytes: int
    media_type: str
    limits: ChunkedUpload
    updated: float
    state: State = "collecting"
    reason: str = ""
    held: dict[int, Held[T]] = field(default_factory=dict)
    first_held: float | None = None
    first_index: int = 0
    digests: tuple[bytes, ...] = ()  # of the original pieces, once whole
    kept: tuple[bytes, ...] | None = None  # the protected pieces
    kept_at: float = 0.0
    unprotected: bool = False  # skipped, though an image that needed protecting

    @property
    def received(self) -> int:
        return sum(len(s.data) for s in self.held.values())

    @property
    def kept_bytes(self) -> int:
        return sum(map(len, self.kept)) if self.kept is not None else 0

    def in_order(self) -> tuple[Held[T], ...]:
        return tuple(self.held[i] for i in sorted(self.held))

    def skip(self) -> Skip:
        return Skip(self.reason, unprotected=self.unprotected)


def _is_image(media_type: str) -> bool:
    return media_type.lower().startswith("image/")


def _unlike(upload: _Upload[T], index: int, data: bytes, image: str) -> str:
    """Why segment ``index`` with ``data`` is not one of the whole image ``upload`` had
    (described by ``image``); "" when it is."""
    position = index - upload.first_index
    if not 0 <= position < len(upload.digests):
        return (f"segment {index} arrived after the image was complete (segments "
                f"{upload.first_index}...{upload.first_index + len(upload.digests) - 1})")
    if hashlib.sha256(data).digest() != upload.digests[position]:
        return f"segment {index} arrived again with bytes other than those of the image {image}"
    return ""


class Reassembly(Generic[K, T]):
    """The uploads in progress, by their key ``K`` (the media id, with its site).

    Args:
        max_held_bytes: the most bytes held at once, over every upload: segments held and
            protected pieces kept.
        max_uploads: the most uploads remembered; past it the oldest that hold nothing
            are forgotten.
    """

    def __init__(self, max_held_bytes: int, max_uploads: int = 1024) -> None:
        self.max_held_bytes = max_held_bytes
        self.max_uploads = max_uploads
        self.held_bytes = 0
        self._uploads: dict[K, _Upload[T]] = {}

    def __contains__(self, media_id: K) -> bool:
        return media_id in self._uploads

    def declare(self, media_id: K, total_bytes: int, media_type: str,
                limits: ChunkedUpload, now: float) -> Skip | None:
        """An upload begins; a :class:`Skip` when its segments will not be held."""
        self._forget_stale(now)
        earlier = self._uploads.get(media_id)
        if earlier is not None and earlier.held:
            return Skip(f"media {media_id} was declared again while its segments are held",
                        unprotected=_is_image(media_type))
        if earlier is not None:
            self._let_go(earlier)
        upload: _Upload[T] = _Upload(total_bytes, media_type, limits, now)
        if not _is_image(media_type):
            self._skip(upload, f"media_type {media_type or 'unknown'!r} is not an image")
        elif not 0 < total_bytes <= limits.max_total_bytes:
            self._skip(upload, f"total_bytes {total_bytes} is outside 1..{limits.max_total_bytes} "
                               "(chunked_upload max_total_bytes)", unprotected=True)
        elif total_bytes > self.max_held_bytes:
            self._skip(upload, f"total_bytes {total_bytes} exceeds the proxy's "
                               f"{self.max_held_bytes}-byte bound on held segments",
                       unprotected=True)
        elif len(self._uploads) >= self.max_uploads:
            self._skip(upload, f"{self.max_uploads} uploads are in progress already",
                       unprotected=True)
        self._uploads[media_id] = upload
        return upload.skip() if upload.state == "skipped" else None

    def add(self, media_id: K, index: int, data: bytes, item: T, now: float) -> Step[T] | None:
        """Segment ``index`` of ``media_id`` arrived; None when no such upload was declared."""
        upload = self._uploads.get(media_id)
        if upload is None:
            return None
        upload.updated = now
        if upload.state == "skipped":
            return self._skipped_again(upload, index, data)
        if upload.state == "abandoned":
            return Abandon(upload.reason)
        if upload.state in ("whole", "protected"):
            return self._again(upload, index, data)
        problem = self._problem(upload, index, data, now)
        if problem == "":
            return Again(index)
        if problem is not None:
            return self._abandon(upload, problem)
        upload.held[index] = Held(index, data, item)
        self.held_bytes += len(data)
        if upload.first_held is None:
            upload.first_held = now
        received = upload.received
        if received < upload.total_bytes:
            return Hold(received, upload.total_bytes)
        segments = upload.in_order()
        upload.state, upload.first_index = "whole", segments[0].index
        upload.digests = tuple(hashlib.sha256(s.data).digest() for s in segments)
        return Whole(b"".join(s.data for s in segments), upload.media_type, segments)

    def _problem(self, upload: _Upload[T], index: int, data: bytes, now: float) -> str | None:
        """Why segment ``index`` abandons a collecting upload; "" when it is held already
        with these bytes; None when it may be held."""
        limits = upload.limits
        if index in upload.held:
            return "" if upload.held[index].data == data else \
                f"segment {index} arrived again with other bytes"
        if len(upload.held) >= limits.max_segments or index > limits.max_segments:
            return f"more than {limits.max_segments} segments (chunked_upload max_segments)"
        received = upload.received + len(data)
        if received > upload.total_bytes:
            return f"the segments add up to more than total_bytes {upload.total_bytes}"
        indices = sorted([*upload.held, index])
        if received == upload.total_bytes and (
                indices[0] not in FIRST_INDICES or indices[-1] - indices[0] != len(indices) - 1):
            return f"the segments add up to total_bytes but their indices {indices} leave a gap"
        if upload.first_held is not None and now - upload.first_held > limits.hold_s:
            return f"not complete within {limits.hold_s:g} s (chunked_upload hold_s)"
        if not self._make_room(len(data)):
            return f"holding it would pass the proxy's {self.max_held_bytes}-byte bound"
        return None

    def _again(self, upload: _Upload[T], index: int, data: bytes) -> Resend | Reject:
        """A segment of a whole image arrived again."""
        unlike = _unlike(upload, index, data, "that was protected")
        if unlike:
            return Reject(unlike)
        if upload.state == "whole":
            return Reject(f"segment {index} arrived again before the image was protected")
        if upload.kept is None:
            return Reject(f"segment {index} arrived again after its protected bytes were "
                          "let go (chunked_upload hold_s or the proxy's memory bound)")
        return Resend(index, upload.kept[index - upload.first_index])

    @staticmethod
    def _skipped_again(upload: _Upload[T], index: int, data: bytes) -> Skip:
        """A segment of a skipped upload: skipped as the upload was, unless its whole image
        was checked (no face) and these bytes are not that image's: an image never checked."""
        unlike = upload.digests and _unlike(upload, index, data, "checked (no face)")
        return Skip(unlike, unprotected=True) if unlike else upload.skip()

    def protected(self, media_id: K, pieces: tuple[bytes, ...], now: float) -> None:
        """The whole image of ``media_id`` was protected into ``pieces`` (cut at the
        segments' lengths): keep them for segments sent again, for ``hold_s``."""
        upload = self._uploads[media_id]
        assert upload.state == "whole" and len(pieces) == len(upload.digests)
        self._release(upload)
        upload.state, upload.kept, upload.kept_at = "protected", pieces, now
        self.held_bytes += upload.kept_bytes

    def close(self, media_id: K) -> Abandon[T] | None:
        """The client closed the upload (FINALIZE); an :class:`Abandon` unless its image was
        whole, it was skipped or it is unknown. The upload stays remembered, for requests
        sent again."""
        upload = self._uploads.get(media_id)
        if upload is None or upload.state in ("whole", "protected", "skipped"):
            return None
        if upload.state == "abandoned":
            return Abandon(upload.reason)
        return self._abandon(upload, f"closed after {upload.received} of {upload.total_bytes} "
                                     "bytes (incomplete)")

    def verdict(self, media_id: K) -> Skip | Abandon[T] | None:
        """What stands for an upload skipped or abandoned earlier; None for any other, and
        for one skipped after its whole image was checked (its segments' bytes decide)."""
        upload = self._uploads.get(media_id)
        if upload is None or upload.state not in ("skipped", "abandoned") or self.checked(media_id):
            return None
        return upload.skip() if upload.state == "skipped" else Abandon(upload.reason)

    def checked(self, media_id: K) -> bool:
        """Whether the upload was left alone after its whole image was checked (no face)."""
        upload = self._uploads.get(media_id)
        return upload is not None and upload.state == "skipped" and bool(upload.digests)

    def rewritten(self, media_id: K) -> bool:
        """Whether the upload's image is protected (or being protected): a segment of it
        must not reach the site with its original bytes."""
        upload = self._uploads.get(media_id)
        return upload is not None and upload.state in ("whole", "protected")

    def abandon(self, media_id: K, reason: str) -> Abandon[T]:
        """Abandon the upload for ``reason`` (the whole image could not be protected)."""
        upload = self._uploads.get(media_id)
        return Abandon(reason) if upload is None else self._abandon(upload, reason)

    def leave(self, media_id: K, reason: str) -> tuple[Held[T], ...]:
        """Leave the upload untouched for ``reason``: its held segments, handed back."""
        upload = self._uploads.get(media_id)
        if upload is None:
            return ()
        released = upload.in_order()
        self._release(upload)
        self._skip(upload, reason)
        return released

    def expire(self, media_id: K, now: float) -> Abandon[T] | None:
        """Past ``hold_s``: abandon an upload still collecting (from its first segment), or
        let go of the protected pieces kept (from the protection)."""
        upload = self._uploads.get(media_id)
        if upload is None:
            return None
        hold_s = upload.limits.hold_s
        if upload.state == "protected" and now - upload.kept_at >= hold_s:
            self._let_go(upload)
        if upload.state != "collecting" or upload.first_held is None \
                or now - upload.first_held < hold_s:
            return None
        return self._abandon(upload, f"not complete within {hold_s:g} s (chunked_upload hold_s)")

    def pending(self) -> Iterator[K]:
        """The media ids whose segments are held."""
        return (media_id for media_id, upload in self._uploads.items() if upload.held)

    def _abandon(self, upload: _Upload[T], reason: str) -> Abandon[T]:
        released = upload.in_order()
        self._release(upload)
        upload.state, upload.reason = "abandoned", reason
        return Abandon(reason, released)

    def _skip(self, upload: _Upload[T], reason: str, unprotected: bool = False) -> None:
        upload.state, upload.reason, upload.unprotected = "skipped", reason, unprotected

    def _release(self, upload: _Upload[T]) -> None:
        self.held_bytes -= upload.received
        upload.held = {}

    def _let_go(self, upload: _Upload[T]) -> None:
        """Forget the protected pieces an upload keeps."""
        self.held_bytes -= upload.kept_bytes
        upload.kept = None

    def _make_room(self, needed: int) -> bool:
        """Let go of the oldest protected pieces kept until ``needed`` more bytes fit;
        whether they do. A retry of their segments is then refused, not sent as it is."""
        keeping = sorted((u for u in self._uploads.values() if u.kept is not None),
                         key=lambda u: u.kept_at)
        while self.held_bytes + needed > self.max_held_bytes and keeping:
            self._let_go(keeping.pop(0))
        return self.held_bytes + needed <= self.max_held_bytes

    def _forget_stale(self, now: float) -> None:
        """Let go of protected pieces kept past ``hold_s``; forget uploads declared but
        silent for ``hold_s``; past ``max_uploads``, the oldest that hold nothing."""
        for media_id, upload in list(self._uploads.items()):
            if upload.kept is not None and now - upload.kept_at > upload.limits.hold_s:
                self._let_go(upload)
            if upload.state == "collecting" and not upload.held \
                    and now - upload.updated > upload.limits.hold_s:
                del self._uploads[media_id]
        idle = [media_id for media_id, u in self._uploads.items()
                if not u.held and u.kept is None]
        while len(self._uploads) >= self.max_uploads and idle:
            del self._uploads[idle.pop(0)]
