"""The engine's configuration files: shipped as package data, replaceable by the user.

``models.yaml`` (the model zoo) and ``service.yaml`` (the service settings) live in this
package, so an installed wheel finds them; each documents its keys inline. A user's own copy
replaces one through its environment variable (or the command's flag, which wins). The
upload policy is the SDK's (``grasp_sdk.policy.default_policy_path``): the proxy and the SDK
read it without the engine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path

#: Names the model zoo file that replaces the shipped ``models.yaml``.
ZOO_ENV = "GRASP_GUARD_ZOO"
#: Names the service settings file that replaces the shipped ``service.yaml``.
SERVICE_CONFIG_ENV = "GRASP_GUARD_SERVICE_CONFIG"

# Package data may live in a zip: a file extracted for the process's lifetime, removed at exit
# (the importlib.resources recipe). An ordinary install yields the installed file itself.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


@functools.cache
def shipped_path(name: str) -> Path:
    """The shipped configuration file ``name`` (e.g. ``"models.yaml"``), as a file on disk."""
    resource = importlib.resources.files(__name__).joinpath(name)
    return _EXTRACTED.enter_context(importlib.resources.as_file(resource))


def config_path(name: str, env_var: str, env: Mapping[str, str] | None = None) -> Path:
    """``$env_var`` when set and not empty, else the shipped file ``name``.

    Args:
        name: the shipped file's name.
        env_var: the environment variable that replaces it.
        env: the environment (default ``os.environ``).
    """
    value = (os.environ if env is None else env).get(env_var, "").strip()
    return Path(value).expanduser() if value else shipped_path(name)
