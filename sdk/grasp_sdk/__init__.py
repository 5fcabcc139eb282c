"""GRASP Guard SDK: protect face photos in an application's uploads.

The service client (:class:`GraspClient`, :class:`SyncGraspClient`), the per-site upload
policy (:func:`load_policy`), the upload hook (:func:`rewrite_upload`, and
:func:`rewrite_upload_sync` for synchronous callers) and the aiohttp client middleware
(:class:`GraspMiddleware`). Light by design: stdlib, aiohttp and PyYAML. The httpx
transports (``grasp_sdk.httpx_transport``) and the requests adapter
(``grasp_sdk.requests_adapter``) need their optional client and are imported from there.

Protect an application's uploads::

    policy = load_policy()  # the shipped policy, or load_policy("my-policy.yaml")
    async with GraspClient("http://127.0.0.1:8765") as client:
        async with aiohttp.ClientSession(
                middlewares=(GraspMiddleware(client, policy),)) as session:
            await session.post(url, data=form)  # images in `form` go out protected

Protect one image::

    with SyncGraspClient("http://127.0.0.1:8765") as client:
        result = client.protect_bytes(jpeg_bytes, preset="strong")
"""

from grasp_sdk.cache import ProtectCache
from grasp_sdk.client import GraspClient
from grasp_sdk.errors import (
    GraspSDKError,
    PolicyError,
    ProtectTimeout,
    RewriteError,
    ServiceError,
    ServiceUnavailable,
    UnprotectableUpload,
)
from grasp_sdk.hook import ImageReport, UploadRewrite, rewrite_upload, rewrite_upload_sync
from grasp_sdk.middleware import GraspMiddleware
from grasp_sdk.options import ProtectOptions
from grasp_sdk.policy import (
    POLICY_ENV,
    Policy,
    SitePipeline,
    SiteRule,
    default_policy_path,
    load_policy,
    parse_policy,
)
from grasp_sdk.result import ProtectFn, ProtectResult, SyncProtectFn
from grasp_sdk.sync_client import SyncGraspClient

__all__ = [
    "POLICY_ENV",
    "GraspClient",
    "GraspMiddleware",
    "GraspSDKError",
    "ImageReport",
    "Policy",
    "PolicyError",
    "ProtectCache",
    "ProtectFn",
    "ProtectOptions",
    "ProtectResult",
    "ProtectTimeout",
    "RewriteError",
    "ServiceError",
    "ServiceUnavailable",
    "SitePipeline",
    "SiteRule",
    "SyncGraspClient",
    "SyncProtectFn",
    "UnprotectableUpload",
    "UploadRewrite",
    "default_policy_path",
    "load_policy",
    "parse_policy",
    "rewrite_upload",
    "rewrite_upload_sync",
]
