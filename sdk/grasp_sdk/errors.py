"""The few, flat exceptions of the SDK."""

from __future__ import annotations


class GraspSDKError(Exception):
    """Base of every error the SDK raises on purpose."""


class ServiceError(GraspSDKError):
    """The protection service answered with an error it means (a 4xx/5xx JSON error body).

    Attributes:
        kind: the service's machine-readable error kind (e.g. ``invalid_image``).
        message: the service's human-readable message.
        status: the HTTP status of the answer.
    """

    def __init__(self, kind: str, message: str, status: int) -> None:
        super().__init__(f"{kind} ({status}): {message}")
        self.kind = kind
        self.message = message
        self.status = status


class ServiceUnavailable(GraspSDKError):
    """No endpoint could take the image: unreachable, overloaded (429/503) after retries."""


class ProtectTimeout(GraspSDKError):
    """The protection did not finish within the client's total time budget."""


class PolicyError(GraspSDKError, ValueError):
    """A policy file is invalid; the message names the file, the site and the field.

    Attributes:
        source: the file (or ``<string>``) the policy came from.
        site: the site entry at fault (``defaults`` for the defaults block), if any.
        field: the field at fault, if any.
    """

    def __init__(self, message: str, *, source: str, site: str | None = None,
                 field: str | None = None) -> None:
        where = source
        if site is not None:
            where += f": site {site!r}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.site = site
        self.field = field


class RewriteError(GraspSDKError):
    """An image inside a matched upload could not be protected; the upload is left whole.

    The caller applies the site's ``on_failure`` (``pass`` forwards the original upload,
    ``block`` refuses it); the hook never returns a half-rewritten body.

    Attributes:
        site: the name of the policy site the upload matched.
        on_failure: that site's ``on_failure`` (``pass`` or ``block``).
    """

    def __init__(self, message: str, *, site: str, on_failure: str) -> None:
        super().__init__(f"site {site!r}: {message}")
        self.site = site
        self.on_failure = on_failure


class UnprotectableUpload(RewriteError):
    """A matched upload carries an image the hook cannot rewrite (its body is signed, too big,
    malformed, a piece of a split upload, or in a format the site's policy leaves out), and
    the site's ``on_failure`` is ``block``: it must not go as it is."""
