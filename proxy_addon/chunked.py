"""X's chunked media upload through the proxy: hold the segments, protect the whole image,
send the segments on with their original lengths.

X clients send APPENDs one after another, each waiting for its answer (X's web client), or
a few at once (API libraries such as node-twitter-api-v2, with a concurrency limit): holding
segment 0 until the last one arrives would wait forever. So the proxy answers every APPEND
but the one that completes the image itself (X's own answer: 204, or the v2 API's JSON,
with the CORS headers INIT's answer carried) and keeps a copy; when the segments add up to
the whole image, it is protected with ``size_mode=exact`` and the held segments go to the
site in index order (through mitmproxy's client replay), each with its original length,
before the completing one goes on with the client's own request. The trade-off: the client
hears "accepted" for a segment before the site does. A held segment the site then refuses
is told to the client on the completing APPEND (502), so a broken upload never looks
finished.

Once protected, the image's protected pieces are kept for the hold time: an APPEND sent
again (a client's retry, before or after FINALIZE) with its original bytes goes out with
its protected piece instead, so original bytes never overwrite a protected segment on the
site; one with other bytes, or once the pieces were let go, is handled under
``on_failure``, as is one with other bytes after the image was found to have no face (an
image never checked). Requests of an upload whose image is being protected wait for it.

Anything incomplete, out of order, over a limit or too slow is abandoned: under
``on_failure: pass`` the held segments go to the site untouched, in order, before the
request at hand; under ``block`` they are dropped and the upload is refused. An image upload
the headers forbid rewriting (an unknown digest algorithm, a signature) or the proxy will not
hold (too large) goes untouched under ``pass`` and is refused under ``block``, as a single
upload is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from grasp_sdk import (
    ProtectCache,
    ProtectFn,
    ProtectResult,
    RewriteError,
    SiteRule,
    UnprotectableUpload,
)
from grasp_sdk import headers as hdrs
from grasp_sdk.hook import ImageReport
from grasp_sdk.sniff import image_type, is_complete
from grasp_sdk.splice import MalformedBody
from mitmproxy import http

from proxy_addon import message, x_media
from proxy_addon.errors import Undelivered
from proxy_addon.failure import BLOCKED_HEADER, describe
from proxy_addon.record import METADATA_KEY, record
from proxy_addon.replay import Forward
from proxy_addon.segments import (
    Abandon,
    Again,
    Held,
    Hold,
    Reassembly,
    Reject,
    Resend,
    Skip,
    Whole,
)
from proxy_addon.settings import GuardSettings

logger = logging.getLogger(__name__)

_CORS = b"access-control-"


class Media(NamedTuple):
    """A chunked upload, as the proxy keys it: the media id is the host's own, so two hosts'
    ids may be the same (small sequential ids on two self-hosted instances) and never mix."""

    site: str
    host: str
    id: str

    @classmethod
    def of(cls, rule: SiteRule, flow: http.HTTPFlow, media_id: str) -> Media:
        """The upload ``media_id`` of ``flow``'s host, under ``rule``."""
        return cls(rule.name, flow.request.host, media_id)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Piece:
    """A segment's request, as the proxy keeps it.

    Attributes:
        flow: a copy of the request (not live), to send on later.
        segment: where its bytes lie in the body.
        fields: its headers as sent.
        length_locked: a signature covers its Content-Length.
    """

    flow: http.HTTPFlow
    segment: x_media.Segment
    fields: hdrs.Fields
    length_locked: bool


@dataclass(frozen=True)
class _Answer:
    """What the proxy's own answers to an upload's APPENDs carry.

    Attributes:
        cors: the CORS headers of the site's answer to INIT.
        expires_at: when the site said the upload expires (epoch seconds), if it did.
    """

    cors: list[tuple[bytes, bytes]]
    expires_at: int | None


class ChunkedUploads:
    """The chunked uploads in progress through one proxy.

    Args:
        settings: the addon's settings now (timeout, memory bound).
        protect: protects one image.
        cache: the addon's cache of protected images.
        forward: sends a held request on to the site.
    """

    def __init__(self, settings: Callable[[], GuardSettings], protect: ProtectFn,
                 cache: ProtectCache, forward: Forward) -> None:
        self._settings = settings
        self._protect = protect
        self._cache = cache
        self._forward = forward
        self.reassembly: Reassembly[Media, Piece] = Reassembly(settings().max_buffer)
        self._answers: dict[Media, _Answer] = {}
        self._timers: dict[Media, asyncio.Task[None]] = {}
        self._busy: dict[Media, asyncio.Event] = {}  # set when the upload's work is done

    async def request(self, flow: http.HTTPFlow, rule: SiteRule) -> bool:
        """Handle one request to a chunked-upload site; False leaves it to the single-upload
        path (not a command, or an APPEND of an upload whose INIT the proxy did not see).

        Raises:
            RewriteError: the upload was abandoned; apply ``on_failure`` to ``flow`` (the
                held segments already went on, when it says ``pass``).
            Undelivered: a held segment could not be sent; refuse ``flow``.
        """
        request = flow.request
        body = request.raw_content or b""
        command = x_media.parse_command(request.pretty_url,
                                        request.headers.get("content-type", ""), body)
        if isinstance(command, x_media.Init):
            record(flow, "declared", f"INIT of {command.total_bytes} bytes of "
                   f"{command.media_type or 'an unnamed type'}", rule.name,
                   total_bytes=command.total_bytes, media_type=command.media_type)
            return True
        if command is None:
            return False
        media = Media.of(rule, flow, command.media_id)
        if media not in self.reassembly:
            return False
        busy = self._busy.get(media)
        if busy is not None:  # held segments reach the site, or the image is protected, first
            await busy.wait()
        if isinstance(command, x_media.Finalize):
            closed = self.reassembly.close(media)
            if closed is not None:
                self._stop_timer(media)
                raise await self._abandon(rule, media, closed)
            record(flow, "untouched", f"FINALIZE of media {media}", rule.name,
                   media_id=media.id)
            return True
        await self._append(flow, rule, command)
        return True

    def response(self, flow: http.HTTPFlow, rule: SiteRule) -> None:
        """Learn the media id of an INIT from the site's answer, and start holding."""
        entry = flow.metadata.get(METADATA_KEY)
        if not entry or entry["action"] != "declared" or flow.response is None:
            return
        assert rule.chunked_upload is not None
        status = flow.response.status_code
        declared = x_media.init_answer(flow.response.content or b"") \
            if 200 <= status < 300 else None
        if declared is None:
            entry["reason"] += f"; no media_id in the site's answer ({status})"
            return
        media = Media.of(rule, flow, declared.media_id)
        self.reassembly.max_held_bytes = self._settings().max_buffer
        if media not in self.reassembly.pending():  # an earlier upload of the id is let
            self._stop_timer(media)                       # go: its timer is not this one's
        skip = self.reassembly.declare(media, entry["total_bytes"], entry["media_type"],
                                       rule.chunked_upload, time.monotonic())
        entry["media_id"] = media.id
        if skip is not None:
            entry["reason"] += f"; its segments go untouched: {skip.reason}"
            return
        entry["reason"] += f"; media {media}: its segments are held until the last"
        for gone in [m for m in self._answers if m not in self.reassembly]:
            del self._answers[gone]
        expires = declared.expires_after_s
        self._answers[media] = _Answer(
            [(k, v) for k, v in flow.response.headers.fields if k.lower().startswith(_CORS)],
            None if expires is None else int(time.time()) + expires)

    def done(self) -> None:
        """The proxy stops: held segments that never reached the site are said in the log."""
        for task in self._timers.values():
            task.cancel()
        for media in self.reassembly.pending():
            logger.warning("media %s: held segments were not sent, the proxy stopped", media)

    async def _append(self, flow: http.HTTPFlow, rule: SiteRule,
                      command: x_media.Append) -> None:
        request, media = flow.request, Media.of(rule, flow, command.media_id)
        verdict = self.reassembly.verdict(media)
        if isinstance(verdict, Skip):
            return _skipped(flow, rule, media, verdict)
        if isinstance(verdict, Abandon):
            raise await self._abandon(rule, media, verdict)
        body = request.raw_content or b""
        fields = message.fields_of(request)
        try:
            segment = x_media.segment_of(request.headers.get("content-type", ""), body)
            limits = hdrs.constraints(fields, request.pretty_url, body)
            problem = limits.reason and f"segment {command.segment_index}: {limits.reason}"
        except MalformedBody as exc:
            problem = f"malformed APPEND: {exc}"
        if problem and self.reassembly.rewritten(media):
            # its original bytes would land among protected ones: refused, whatever
            # on_failure says, as a corrupt image would be the one answer worse than none
            raise RewriteError(f"media {media}: {problem}; the segment cannot carry its "
                               "protected bytes", site=rule.name, on_failure="block")
        if problem and self.reassembly.checked(media):  # no face in the image checked
            return _skipped(flow, rule, media, Skip(f"{problem}; its bytes cannot be checked "
                                                    "against the image", unprotected=True))
        if problem:
            return await self._leave(flow, rule, media, problem)
        piece = Piece(flow.copy(), segment, fields, limits.length_locked)
        step = self.reassembly.add(media, command.segment_index, segment.data, piece,
                                   time.monotonic())
        index = command.segment_index
        if isinstance(step, Abandon):
            self._stop_timer(media)
            raise await self._abandon(rule, media, step)
        if isinstance(step, Skip):
            return _skipped(flow, rule, media, step)
        if isinstance(step, Reject):
            raise RewriteError(f"media {media}: {step.reason}", site=rule.name,
                               on_failure=rule.on_failure)
        if isinstance(step, Hold | Again):
            self._hold(flow, rule, media, index, step)
        elif isinstance(step, Resend):
            self._resend(flow, rule, media, piece, step)
        elif isinstance(step, Whole):
            self._stop_timer(media)
            done = self._busy[media] = asyncio.Event()
            try:
                await self._complete(flow, rule, media, index, step)
            finally:
                del self._busy[media]
                done.set()

    def _hold(self, flow: http.HTTPFlow, rule: SiteRule, media: Media, index: int,
              step: Hold | Again) -> None:
        assert rule.chunked_upload is not None
        self._start_timer(rule, media)
        answer = self._answers.get(media, _Answer([], None))
        status, body, headers = x_media.accepted(flow.request.pretty_url, answer.expires_at)
        flow.response = http.Response.make(
            status, body, [*headers, *answer.cors, (BLOCKED_HEADER.encode(), b"held")])
        how = "held already" if isinstance(step, Again) else \
            f"held ({step.received} of {step.total_bytes} bytes in)"
        record(flow, "held", f"segment {index} of media {media} {how} and answered by the "
               "proxy", rule.name, media_id=media.id, segment_index=index)

    def _resend(self, flow: http.HTTPFlow, rule: SiteRule, media: Media, piece: Piece,
                step: Resend) -> None:
        """A segment sent again after its image was protected goes with its protected piece."""
        fields, body = _rebuilt(rule, piece, step.index, step.data)
        message.rewrite(flow.request, fields, body)
        record(flow, "protected", f"segment {step.index} of media {media} sent again after "
               "its image was protected: it carries its protected bytes", rule.name,
               media_id=media.id, segment_index=step.index)

    async def _complete(self, flow: http.HTTPFlow, rule: SiteRule, media: Media, index: int,
                        whole: Whole[Piece]) -> None:
        """Protect the whole image and send its segments on, the one of ``flow`` (segment
        ``index``) last."""
        started = time.monotonic()
        earlier = tuple(s for s in whole.segments if s.index != index)
        media_type = image_type(whole.image)
        if media_type is None or not is_complete(whole.image, media_type):
            return await self._leave(flow, rule, media, f"the {len(whole.image)} bytes of "
                                     "its segments are not a complete image", earlier)
        try:
            result, cached = await self._protect_whole(rule, whole.image, media_type)
            changed = result.data != whole.image
            bodies = await asyncio.to_thread(_cut, rule, whole, result.data) if changed else {}
        except Exception as exc:  # failure is a policy: pass or block
            step = self.reassembly.abandon(media, describe(exc))
            raise await self._abandon(rule, media, Abandon(step.reason, earlier)) from exc
        if not changed:
            self.reassembly.leave(media, "no face found in its image")
            await self._send(rule, media, earlier, "no face found: sent untouched")
            record(flow, "untouched", f"media {media}: no image needed protection "
                   "(no face found)", rule.name, media_id=media.id)
            return
        self.reassembly.protected(media, _pieces(result.data, whole.lengths),
                                  time.monotonic())
        self._start_timer(rule, media)  # lets go of the protected pieces after hold_s
        await self._send(rule, media, earlier, "protected",
                         [bodies[s.index] for s in earlier])
        message.rewrite(flow.request, *bodies[index])
        logger.info("site %s: protected the %d-segment image of media %s", rule.name,
                    len(whole.segments), media)
        report = ImageReport(f"media {media}, {len(whole.segments)} segments", media_type,
                             len(whole.image), len(result.data), cached, result.report)
        record(flow, "protected", f"protected the {len(whole.segments)}-segment image of "
               f"media {media}", rule.name, media_id=media.id,
               segments=list(whole.lengths), seconds=time.monotonic() - started,
               images=[asdict(report)])

    async def _protect_whole(self, rule: SiteRule, image: bytes,
                             media_type: str) -> tuple[ProtectResult, bool]:
        options = rule.options(exact_size=True)  # INIT declared total_bytes
        async with asyncio.timeout(self._settings().timeout_s):
            result, cached = await self._cache.protect(image, options, self._protect)
        returned = image_type(result.data)
        if returned != media_type or len(result.data) != len(image):
            raise RewriteError(f"the service returned {len(result.data)} bytes of "
                               f"{returned or 'a non-image'} for {len(image)} bytes of "
                               f"{media_type} (size_mode=exact)",
                               site=rule.name, on_failure=rule.on_failure)
        return result, cached

    async def _leave(self, flow: http.HTTPFlow, rule: SiteRule, media: Media, reason: str,
                     held: Sequence[Held[Piece]] | None = None) -> None:
        """Leave the upload untouched, like a single upload whose headers or body forbid
        rewriting it; on a ``block`` site its image must not go unprotected: abandoned."""
        if rule.on_failure == "block":
            step = self.reassembly.abandon(media, reason)
            self._stop_timer(media)
            released = step.released if held is None else held
            raise await self._abandon(rule, media, Abandon(step.reason, tuple(released)),
                                      UnprotectableUpload)
        released = self.reassembly.leave(media, reason)
        self._stop_timer(media)
        await self._send(rule, media, released if held is None else held,
                         f"sent untouched: {reason}")
        record(flow, "untouched", f"media {media}: {reason}", rule.name, media_id=media.id)

    async def _abandon(self, rule: SiteRule, media: Media, step: Abandon[Piece],
                       error: type[RewriteError] = RewriteError) -> RewriteError:
        """Send the held segments on untouched (``pass``) or drop them (``block``); the
        ``error`` that applies ``on_failure`` to the request at hand, for the caller to raise."""
        reason = f"media {media}: {step.reason}"
        if rule.on_failure == "pass":
            await self._send(rule, media, step.released, f"sent untouched: {step.reason}")
        elif step.released:
            logger.warning("dropped %d held segment(s) of %s (site %s blocks): %s",
                           len(step.released), media, rule.name, step.reason)
        return error(reason, site=rule.name, on_failure=rule.on_failure)

    async def _send(self, rule: SiteRule, media: Media, held: Sequence[Held[Piece]],
                    why: str, bodies: Sequence[tuple[hdrs.Fields, bytes]] | None = None) -> None:
        """Send held segments on in order, with new bodies when given; raises Undelivered
        when the site does not take one."""
        for position, segment in enumerate(held):
            out = segment.item.flow
            if bodies is not None:
                message.rewrite(out.request, *bodies[position])
            record(out, "forwarded", f"held segment {segment.index} of media {media} "
                   f"{why}", rule.name, media_id=media.id, segment_index=segment.index)
            try:
                async with asyncio.timeout(self._settings().timeout_s):
                    await self._forward(out)
            except Exception as exc:  # a segment lost is told to the client
                raise Undelivered(f"media {media}: held segment {segment.index} could "
                                  f"not be sent: {describe(exc)}") from exc
            problem = _refusal(out)
            if problem:
                raise Undelivered(f"media {media}: held segment {segment.index} {problem}")

    def _start_timer(self, rule: SiteRule, media: Media) -> None:
        assert rule.chunked_upload is not None
        if media not in self._timers:
            self._timers[media] = asyncio.create_task(
                self._expire(rule, media, rule.chunked_upload.hold_s))

    async def _expire(self, rule: SiteRule, media: Media, hold_s: float) -> None:
        """After ``hold_s``: abandon the upload if still incomplete, or let go of its
        protected pieces."""
        try:
            await asyncio.sleep(hold_s)
            step = self.reassembly.expire(media, time.monotonic())
            if step is None:
                return
            done = self._busy[media] = asyncio.Event()
            try:
                error = await self._abandon(rule, media, step)
                logger.warning("%s (on_failure %s)", error, rule.on_failure)
            except Undelivered as exc:
                logger.warning("%s (site %s)", exc, rule.name)
            finally:
                del self._busy[media]
                done.set()
        finally:
            if self._timers.get(media) is asyncio.current_task():
                del self._timers[media]

    def _stop_timer(self, media: Media) -> None:
        timer = self._timers.pop(media, None)
        if timer is not None:
            timer.cancel()


def _skipped(flow: http.HTTPFlow, rule: SiteRule, media: Media, skip: Skip) -> None:
    """A request of an upload left alone goes untouched, unless it carries an image the
    proxy could not protect and the site blocks what it cannot."""
    if skip.unprotected and rule.on_failure == "block":
        raise UnprotectableUpload(f"media {media}: {skip.reason}; its image cannot be "
                                  "protected", site=rule.name, on_failure="block")
    record(flow, "untouched", skip.reason, rule.name, media_id=media.id)


def _pieces(image: bytes, lengths: Sequence[int]) -> tuple[bytes, ...]:
    """``image`` cut at ``lengths``."""
    ends = list(itertools.accumulate(lengths))
    return tuple(image[end - length:end] for end, length in zip(ends, lengths, strict=True))


def _cut(rule: SiteRule, whole: Whole[Piece],
         image: bytes) -> dict[int, tuple[hdrs.Fields, bytes]]:
    """The segments' new headers and bodies by index: ``image`` cut at the original lengths."""
    pieces = _pieces(image, whole.lengths)
    return {segment.index: _rebuilt(rule, segment.item, segment.index, data)
            for segment, data in zip(whole.segments, pieces, strict=True)}


def _rebuilt(rule: SiteRule, piece: Piece, index: int,
             data: bytes) -> tuple[hdrs.Fields, bytes]:
    """Segment ``index``'s request headers and body with ``data`` as its bytes."""
    body = piece.segment.replace(data)
    old = piece.flow.request.raw_content or b""
    if piece.length_locked and len(body) != len(old):
        raise RewriteError(f"a signature covers Content-Length and segment {index} "
                           f"changed length ({len(old)} → {len(body)})",
                           site=rule.name, on_failure=rule.on_failure)
    return hdrs.fix_up(piece.fields, body, rule.length_headers), body


def _refusal(flow: http.HTTPFlow) -> str | None:
    if flow.error is not None:
        return f"could not be sent: {flow.error.msg}"
    if flow.response is None:
        return "got no answer"
    if not 200 <= flow.response.status_code < 300:
        return f"was refused by the site ({flow.response.status_code})"
    return None
