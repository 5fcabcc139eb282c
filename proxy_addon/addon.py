"""The GRASP Guard mitmproxy addon: protect the face photos of matched uploads in flight.

``requestheaders`` streams every request that cannot be a candidate image upload and
buffers candidates; the async ``request`` hook has the protection service rewrite a
candidate through :func:`grasp_sdk.rewrite_upload` and applies the result in one step.
Whatever fails, the site's ``on_failure`` decides: ``pass`` forwards the original bytes,
``block`` answers the client with a JSON refusal. A site with ``chunked_upload`` (X) has
its split images held and reassembled first (:mod:`proxy_addon.chunked`). A protected upload
its site redirects (307, 308) is protected again where the client repeats it
(:mod:`proxy_addon.redirects`). What was done is recorded in ``flow.metadata["grasp_guard"]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from grasp_sdk import (
    GraspClient,
    Policy,
    ProtectCache,
    ProtectFn,
    ProtectOptions,
    ProtectResult,
    RewriteError,
    UnprotectableUpload,
    UploadRewrite,
    rewrite_upload,
)
from grasp_sdk.sniff import carries_image
from mitmproxy import ctx, exceptions, http

from proxy_addon import message
from proxy_addon import settings as opts
from proxy_addon.chunked import ChunkedUploads
from proxy_addon.decide import CachedMatcher, decide
from proxy_addon.errors import Undelivered
from proxy_addon.failure import block_response, describe, undelivered_response
from proxy_addon.record import METADATA_KEY
from proxy_addon.record import record as _record
from proxy_addon.redirects import Protected, Redirects, sent_again
from proxy_addon.replay import Forward, Replayer

logger = logging.getLogger(__name__)

#: Called with the flow and its record when an upload went out unprotected or was refused.
Notify = Callable[[http.HTTPFlow, dict[str, Any]], None]

_ACTIONS = {"buffer": "buffered", "stream": "streamed", "ignore": "ignored"}
_PROTECTED = "grasp_guard.protected"  # flow.metadata: the Protected upload the flow sends
_REPEAT = "grasp_guard.repeat"  # flow.metadata: the Protected upload the flow may repeat
# option name -> (GuardSettings field, parser raising ValueError)
_PARSERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "grasp_policy": ("policy", opts.parse_policy_path),
    "grasp_service": ("endpoints", opts.parse_endpoints),
    "grasp_token": ("token", opts.parse_token),
    "grasp_timeout": ("timeout_s", opts.parse_timeout),
    "grasp_max_buffer": ("max_buffer", opts.parse_max_buffer),
}


class GraspGuard:
    """Protect the images of uploads the policy matches; stream everything else.

    Args:
        notify: told about every upload that went out unprotected or was refused (a
            desktop notification, a counter); its errors are logged, never raised.
        protect: protects one image instead of the service named by ``grasp_service``
            (an in-process engine, or a stand-in in tests).
        forward: sends the held segments of a split upload on to the site instead of
            mitmproxy's client replay (a stand-in in tests).
    """

    def __init__(self, notify: Notify | None = None, protect: ProtectFn | None = None,
                 forward: Forward | None = None) -> None:
        self.settings = opts.GuardSettings()
        self._matcher: CachedMatcher | None = None
        self._notify = notify
        self._protect = protect
        self._cache = ProtectCache()
        self._replayer = Replayer()
        self._redirects = Redirects()
        self._chunked = ChunkedUploads(lambda: self.settings, self._protect_image, self._cache,
                                       forward or self._replayer)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "grasp_policy", str, "",
            "The upload policy file (YAML) that says which requests carry photos to protect "
            "and how. Empty: GRASP Guard leaves every request alone.")
        loader.add_option(
            "grasp_service", Sequence[str], [opts.DEFAULT_SERVICE],
            "The base URL of the protection service (grasp-guard serve); give it several "
            "times to have further endpoints tried in turn.")
        loader.add_option(
            "grasp_token", str, "",
            f"The bearer token the protection service asks for. Empty: the {opts.TOKEN_ENV} "
            "environment variable, if set, which other local users cannot read.")
        loader.add_option(
            "grasp_timeout", str, opts.DEFAULT_TIMEOUT_S,
            "The seconds one upload may take to protect, retries included; past them the "
            "site's on_failure applies.")
        loader.add_option(
            "grasp_max_buffer", int, opts.DEFAULT_MAX_BUFFER,
            "The largest request body in bytes held back for protection; a larger declared "
            "Content-Length streams through untouched. Set stream_large_bodies to the same "
            "value to bound bodies of undeclared length too. Also the most bytes of split "
            "uploads' segments held at once.")

    def configure(self, updated: set[str]) -> None:
        changes = {}
        for option, (field, parse) in _PARSERS.items():
            if option in updated:
                try:
                    changes[field] = parse(getattr(ctx.options, option))
                except ValueError as e:
                    raise exceptions.OptionsError(f"{option}: {e}") from e
        if changes:
            self.settings = replace(self.settings, **changes)
        if "grasp_policy" in updated:
            policy = self.settings.policy
            self._matcher = None if policy is None else CachedMatcher(policy)
            if policy is None:
                logger.warning("grasp_policy is not set: GRASP Guard protects nothing")
            else:
                logger.info("GRASP Guard policy %s: %d site(s) enabled", policy.source,
                            sum(s.enabled for s in policy.sites))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self._replayer.given_up(flow):  # its client heard it failed: it never goes out
            flow.response = http.Response.make(
                504, b"GRASP Guard gave up on sending this held segment", {"Connection": "close"})
            return
        if flow.response or flow.error or not flow.live or self._replayer.owns(flow):
            return
        matcher = self._matcher
        if matcher is None:
            return
        decision = decide(flow.request.method, flow.request.pretty_url, flow.request.headers,
                          matcher, self.settings.max_buffer)
        if decision.action == "refuse" and self.settings.policy is not None:
            assert decision.site is not None
            refusal = UnprotectableUpload(decision.reason, site=decision.site, on_failure="block")
            self._fail(flow, refusal, self.settings.policy, decision.site, time.monotonic())
            if flow.request.stream:  # mitmproxy streams it (stream_large_bodies): no answer
                flow.response = None  # can stand in for a streamed request; it is cut off
                flow.kill()
            return
        if flow.request.stream:
            _record(flow, "streamed", "mitmproxy streams this body (stream_large_bodies)")
            return
        repeats = self._redirects.awaited(flow.request.method, flow.request.pretty_url,
                                          decision.length)
        if repeats:  # its length is a protected upload's (or not declared): held to compare
            flow.metadata[_REPEAT] = (repeats, decision)
            _record(flow, "buffered", "may repeat a protected upload its site redirected here",
                    repeats[0].site)
            return
        if decision.action == "stream":
            flow.request.stream = True
        _record(flow, _ACTIONS[decision.action], decision.reason, decision.site)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or self._replayer.owns(flow):
            return
        record = flow.metadata.get(METADATA_KEY)
        policy = self.settings.policy
        if not record or policy is None:
            return
        site = record["site"]
        rule = policy.get(site) if site else None
        repeats, decision = flow.metadata.get(_REPEAT, ([], None))
        repeat = sent_again(repeats, flow.request.raw_content or b"")
        if repeat is not None:
            self._redirects.served(flow.request.method, flow.request.pretty_url, repeat)
            site, rule = repeat.site, policy.get(repeat.site)
        elif decision is not None:  # not a repeat: as the policy has it
            record = _record(flow, _ACTIONS[decision.action], decision.reason, decision.site)
            site = decision.site
            rule = policy.get(site) if site else None
        if (repeat is None and rule is not None and rule.chunked_upload is not None
                and not rule.signed
                and record["action"] in ("buffered", "ignored")
                and not flow.request.stream and flow.request.raw_content is not None):
            started = time.monotonic()
            try:
                if await self._chunked.request(flow, rule):
                    return
            except Exception as exc:  # noqa: BLE001 - failure is a policy: pass or block
                self._fail(flow, exc, policy, site, started)
                return
        if record["action"] != "buffered":
            return
        body = flow.request.raw_content
        if flow.request.stream or body is None:
            _record(flow, "streamed", "the body outgrew stream_large_bodies", site)
            return
        url = flow.request.pretty_url if repeat is None else repeat.url  # as the policy matched it
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                rewrite = await self._rewrite(flow, policy, url)
        except Exception as exc:  # noqa: BLE001 - failure is a policy: pass or block
            self._fail(flow, exc, policy, site, started)
            return
        if rewrite.changed:
            flow.metadata[_PROTECTED] = Protected.of(url, rewrite.site or site, body)
            message.rewrite(flow.request, rewrite.headers, rewrite.body)
        images = [asdict(image) for image in rewrite.images]
        _record(flow, "protected" if rewrite.changed else "untouched", rewrite.reason,
                rewrite.site or site, seconds=time.monotonic() - started, images=images)

    def response(self, flow: http.HTTPFlow) -> None:
        if self._replayer.owns(flow):
            self._replayer.settle(flow)
            return
        if (protected := flow.metadata.get(_PROTECTED)) is not None:
            self._redirects.note(flow, protected)
        record = flow.metadata.get(METADATA_KEY)
        policy = self.settings.policy
        rule = policy.get(record["site"]) if record and record["site"] and policy else None
        if rule is not None and rule.chunked_upload is not None:
            self._chunked.response(flow, rule)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """A WebSocket message is no upload the hook can rewrite: to a host of a ``block``
        site, one from the client that carries an image is dropped, never forwarded (the
        app's message is lost; no unprotected photo goes)."""
        policy = self.settings.policy
        assert flow.websocket is not None
        sent = flow.websocket.messages[-1]
        if policy is None or not sent.from_client:
            return
        host = flow.request.pretty_host.lower()
        rule = next((s for s in policy.sites if s.enabled and s.on_failure == "block"
                     and any(h.matches(host) for h in s.hosts)), None)
        if rule is None or not carries_image(sent.content):
            return
        sent.drop()
        reason = "a WebSocket message carrying an image (no upload GRASP Guard can protect)"
        logger.warning("dropped a WebSocket message to %s (site %s): %s",
                       flow.request.pretty_url, rule.name, reason)
        self._tell(flow, _record(flow, "blocked", reason, rule.name))

    def error(self, flow: http.HTTPFlow) -> None:
        self._replayer.settle(flow)

    def done(self) -> None:
        self._chunked.done()

    async def _rewrite(self, flow: http.HTTPFlow, policy: Policy, url: str) -> UploadRewrite:
        """``flow``'s upload rewritten as the policy reads it at ``url``."""
        request = flow.request
        assert request.raw_content is not None
        args = (request.method, url, message.fields_of(request), request.raw_content, policy)
        if self._protect is not None:
            return await rewrite_upload(*args, self._protect, cache=self._cache)
        s = self.settings
        async with GraspClient(s.endpoints, token=s.token, total_timeout=s.timeout_s) as client:
            return await rewrite_upload(*args, client.protect, cache=self._cache)

    async def _protect_image(self, data: bytes, options: ProtectOptions) -> ProtectResult:
        """One image protected by the stand-in given, else by the service."""
        if self._protect is not None:
            return await self._protect(data, options)
        s = self.settings
        async with GraspClient(s.endpoints, token=s.token, total_timeout=s.timeout_s) as client:
            return await client.protect(data, options)

    def _fail(self, flow: http.HTTPFlow, exc: Exception, policy: Policy, site: str,
              started: float) -> None:
        rule = policy.get(site)
        if isinstance(exc, RewriteError):
            on_failure = exc.on_failure
        else:
            on_failure = rule.on_failure if rule is not None else "pass"
        reason = describe(exc)
        if isinstance(exc, Undelivered):
            flow.response = undelivered_response(exc, site)
            logger.warning("answered an upload to %s with 502 (site %s): %s",
                           flow.request.pretty_url, site, reason)
        elif on_failure == "block":
            flow.response = block_response(exc, site)
            logger.warning("refused an upload to %s (site %s): %s", flow.request.pretty_url,
                           site, reason)
        else:
            logger.warning("forwarded an upload to %s unprotected (site %s): %s",
                           flow.request.pretty_url, site, reason)
        action = "failed" if isinstance(exc, Undelivered) else \
            "blocked" if on_failure == "block" else "passed"
        self._tell(flow, _record(flow, action, reason, site, seconds=time.monotonic() - started,
                                 error=type(exc).__name__))

    def _tell(self, flow: http.HTTPFlow, record: dict[str, Any]) -> None:
        """Hand an unprotected or refused upload's record to the notify hook, if any."""
        if self._notify is not None:
            try:
                self._notify(flow, record)
            except Exception:
                logger.exception("the GRASP Guard notify hook failed")
