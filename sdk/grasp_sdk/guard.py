"""What every HTTP client adapter does around the upload hook, whichever client it adapts.

The aiohttp middleware, the httpx transports and the requests adapter read the request body
and send the request; :class:`UploadGuard` picks the policy site, runs the hook, applies the
site's ``on_failure`` and reports each outcome, the same way for all of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Iterator

from grasp_sdk import headers as hdrs
from grasp_sdk.bodies import ascanned, scanned
from grasp_sdk.cache import ProtectCache
from grasp_sdk.errors import RewriteError, UnprotectableUpload
from grasp_sdk.hook import UploadRewrite, rewrite_upload, rewrite_upload_sync
from grasp_sdk.policy import Policy, SiteRule
from grasp_sdk.result import ProtectFn, SyncProtectFn

logger = logging.getLogger(__name__)

# Set while a rewrite is in progress, so that the service call itself (which may go through
# the same client) is not taken for an upload to protect.
_REWRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("grasp_rewriting",
                                                                  default=False)


class UploadGuard:
    """The policy, the cache and the reporting shared by the client adapters.

    Args:
        policy: which requests carry images and how to protect them.
        cache: the LRU of protected images (a fresh one by default).
        on_rewrite: called with each :class:`UploadRewrite` of a matching request.
    """

    def __init__(self, policy: Policy, *, cache: ProtectCache | None = None,
                 on_rewrite: Callable[[UploadRewrite], None] | None = None) -> None:
        self.policy = policy
        self.cache = cache if cache is not None else ProtectCache()
        self._on_rewrite = on_rewrite

    def candidate(self, method: str, url: str, length: int | None) -> SiteRule | None:
        """The site whose upload this request may be, or None to send it as is.

        None when no site matches, when the request is the service call of a rewrite in
        progress, or when its declared body ``length`` is past the site's ``max_bytes``
        (unless the site blocks: its body is then scanned as it streams).
        """
        if _REWRITING.get():
            return None
        rule = self.policy.match(method, url)
        if (rule is not None and length is not None and length > rule.max_bytes
                and rule.on_failure != "block"):
            self._send_as_is(method, url, f"body of {length} bytes exceeds max_bytes "
                                          f"{rule.max_bytes}")
            return None
        return rule

    def stream_too_long(self, method: str, url: str, rule: SiteRule,
                        chunks: Iterator[bytes]) -> Iterator[bytes]:
        """What to send of a streamed body past ``max_bytes``: its chunks untouched, or, on
        a ``block`` site, through :func:`scanned` (:class:`UnprotectableUpload` before an
        image goes out)."""
        if rule.on_failure != "block":
            self._send_as_is(method, url, f"streamed body longer than max_bytes {rule.max_bytes}")
            return chunks
        return scanned(chunks, self._refusal(method, url, rule))

    def astream_too_long(self, method: str, url: str, rule: SiteRule,
                         chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """:meth:`stream_too_long` for an asynchronous stream."""
        if rule.on_failure != "block":
            self._send_as_is(method, url, f"streamed body longer than max_bytes {rule.max_bytes}")
            return chunks
        return ascanned(chunks, self._refusal(method, url, rule))

    def _refusal(self, method: str, url: str,
                 rule: SiteRule) -> Callable[[], UnprotectableUpload]:
        def refusal() -> UnprotectableUpload:
            logger.warning("%s %s: refused mid-stream: it carries an image", method, url)
            return UnprotectableUpload(
                f"the streamed body, longer than max_bytes {rule.max_bytes}, carries an image: "
                "it cannot be protected", site=rule.name, on_failure=rule.on_failure)
        return refusal

    def _send_as_is(self, method: str, url: str, reason: str) -> None:
        logger.info("%s %s: sent as is: %s", method, url, reason)

    async def rewrite(self, method: str, url: str, headers: hdrs.HeaderInput, body: bytes,
                      protect: ProtectFn) -> UploadRewrite | None:
        """The rewritten request to send, or None to send the original.

        Raises:
            RewriteError: the protection failed and the site's ``on_failure`` is ``block``.
        """
        rewrite = None
        with self._rewriting(method, url):
            rewrite = await rewrite_upload(method, url, headers, body, self.policy, protect,
                                           cache=self.cache)
        return self._to_send(rewrite)

    def rewrite_sync(self, method: str, url: str, headers: hdrs.HeaderInput, body: bytes,
                     protect: SyncProtectFn) -> UploadRewrite | None:
        """Blocking :meth:`rewrite`: ``protect`` blocks (``SyncGraspClient.protect``)."""
        rewrite = None
        with self._rewriting(method, url):
            rewrite = rewrite_upload_sync(method, url, headers, body, self.policy, protect,
                                          cache=self.cache)
        return self._to_send(rewrite)

    @contextlib.contextmanager
    def _rewriting(self, method: str, url: str) -> Iterator[None]:
        """Marks the rewrite in progress; a failure the site lets pass ends it quietly."""
        token = _REWRITING.set(True)
        try:
            yield
        except RewriteError as exc:
            if exc.on_failure == "block":
                raise
            logger.warning("%s %s: sending the original upload: %s", method, url, exc)
        finally:
            _REWRITING.reset(token)

    def _to_send(self, rewrite: UploadRewrite | None) -> UploadRewrite | None:
        if rewrite is None:
            return None
        if self._on_rewrite is not None:
            self._on_rewrite(rewrite)
        return rewrite if rewrite.changed else None


def declared_length(value: str | None) -> int | None:
    """A ``Content-Length`` value as a number, or None when absent or unreadable."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
