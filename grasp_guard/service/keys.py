"""The typed application keys of the service, all in one place."""

from __future__ import annotations

from aiohttp import web

from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.runtime import Runtime
from grasp_guard.service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", ServiceMetrics)
CPU = web.AppKey("cpu", CpuStage)
RUNTIME = web.AppKey("runtime", Runtime)
