"""The protection service: ``POST /v1/protect`` with cross-request batching, and its probes."""

from grasp_guard.service.app import SERVER_OPTIONS, create_app
from grasp_guard.service.settings import Settings, load_settings

__all__ = ["SERVER_OPTIONS", "Settings", "create_app", "load_settings"]
