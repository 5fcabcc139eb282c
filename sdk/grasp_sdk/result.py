"""What the protection service returns for one image."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grasp_sdk.options import ProtectOptions


@dataclass(frozen=True)
class ProtectResult:
    """One protected image.

    Attributes:
        data: the image bytes; byte-identical to the input when nothing was protected.
        content_type: the image's media type (the same as the input's).
        report: the service's report, at least ``{"faces": int, "protected": bool}``.
    """

    data: bytes
    content_type: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def protected(self) -> bool:
        """Whether the service changed the image."""
        return bool(self.report.get("protected", False))


#: What the upload hook calls to protect one image: ``GraspClient.protect`` or a stand-in.
ProtectFn = Callable[[bytes, ProtectOptions], Awaitable[ProtectResult]]

#: Its blocking form, for synchronous HTTP clients: ``SyncGraspClient.protect`` or a stand-in.
SyncProtectFn = Callable[[bytes, ProtectOptions], ProtectResult]
