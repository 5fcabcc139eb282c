"""Resolve a site name to what the site does to images, from the per-site policy."""

from __future__ import annotations

import dataclasses
import logging
from functools import lru_cache
from pathlib import Path

from grasp_sdk.options import ProtectOptions
from grasp_sdk.policy import Policy, default_policy_path, load_policy

from grasp_guard.errors import ConfigError

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _policy(path: Path) -> Policy:
    return load_policy(path)


def resolve_site(options: ProtectOptions, policy: Path | None = None, *,
                 strict: bool = True) -> ProtectOptions:
    """Fill the site-pipeline options of ``options.site`` from the policy.

    Only options that name a site and give none of its pipeline values are filled; the
    harshest JPEG quality of the site's range is the one the protection must survive.
    A caller with its own policy (the proxy, the SDK) sends the values it resolved itself.

    Args:
        options: the request's options.
        policy: the policy file (default: ``$GRASP_GUARD_POLICY``, else the SDK's shipped one).

    Raises:
        ConfigError: ``strict`` and the site is not in the policy.
    """
    given = (options.site_jpeg_quality, options.site_max_side, options.site_blur_sigma)
    if options.site is None or any(v is not None for v in given):
        return options
    policy = (policy or default_policy_path()).expanduser()
    rule = _policy(policy.resolve()).get(options.site)
    if rule is None:
        if strict:
            raise ConfigError(f"site {options.site!r} is not in the policy {policy}")
        logger.warning("site %r is not in the policy %s: no site pipeline", options.site, policy)
        return options
    pipeline = rule.site_pipeline
    if pipeline is None:
        return options
    return dataclasses.replace(
        options,
        site_jpeg_quality=pipeline.jpeg_quality[0] if pipeline.jpeg_quality else None,
        site_max_side=pipeline.max_side,
        site_blur_sigma=pipeline.blur_sigma,
    )
