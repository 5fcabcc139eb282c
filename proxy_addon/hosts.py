"""Which TLS connections the proxy intercepts at all, derived from the policy."""

from __future__ import annotations

import os

from grasp_sdk import PolicyError, load_policy


def allow_hosts(policy_path: str | os.PathLike[str]) -> list[str]:
    """mitmproxy ``allow_hosts`` regexes for the hosts of a policy file's enabled sites.

    Connections to any other host pass through the proxy as opaque TLS, neither decrypted
    nor seen by the addon.

    Raises:
        PolicyError: the policy cannot be read, or names no host (only ``*`` patterns):
            an empty ``allow_hosts`` would have mitmproxy intercept every connection.
    """
    policy = load_policy(policy_path)
    regexes = policy.allow_hosts()
    if not regexes:
        raise PolicyError("no enabled site names a host for the proxy to intercept "
                          "(any-host patterns do not count): add your hosts",
                          source=policy.source)
    return regexes
