"""What a failed protection becomes: reasons and refusals."""

from __future__ import annotations

import json

import pytest
from grasp_sdk import ProtectTimeout, RewriteError, ServiceError, ServiceUnavailable

from proxy_addon.failure import block_response, block_status, describe


def wrapped(cause: Exception) -> RewriteError:
    try:
        raise RewriteError("body: failed", site="s", on_failure="block") from cause
    except RewriteError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (TimeoutError(), 504),
        (wrapped(ProtectTimeout("no result within 5 s")), 504),
        (wrapped(ServiceUnavailable("all endpoints refused")), 503),
        (wrapped(ServiceError("invalid_image", "bad", 422)), 502),
        (RewriteError("size_mode=exact but 10 → 12 bytes", site="s", on_failure="block"), 502),
        (KeyError("boom"), 502),
    ],
)
def test_block_status(exc: Exception, status: int) -> None:
    assert block_status(exc) == status


def test_block_response_is_json_naming_site_and_reason() -> None:
    response = block_response(wrapped(ServiceUnavailable("down")), "x")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    error = json.loads(response.content or b"")["error"]
    assert error["kind"] == "upload_blocked" and error["site"] == "x"
    assert error["reason"] == "RewriteError: site 's': body: failed"
    assert "site 'x' blocks unprotected uploads" in error["message"]


def test_describe() -> None:
    assert describe(TimeoutError()) == "the protection service did not answer in time"
    assert describe(KeyError("k")) == "KeyError: 'k'"
    assert describe(RuntimeError()) == "RuntimeError"
