"""Protection options shared by the SDK, the proxy, the service and the engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

SizeMode = Literal["any", "max", "exact"]
OnNoFace = Literal["skip", "whole"]
PRESETS = ("fast", "balanced", "strong")
SIZE_MODES = ("any", "max", "exact")
ON_NO_FACE = ("skip", "whole")


@dataclass(frozen=True)
class ProtectOptions:
    """How one image is protected.

    Attributes:
        preset: optimisation budget, one of ``fast``, ``balanced``, ``strong``.
        size_mode: ``any`` size, ``max`` (never larger than the input) or ``exact``
            (the input's byte length, padded with a format-legal comment or chunk).
        on_no_face: ``skip`` returns the input byte-identical; ``whole`` protects the
            whole image as one region.
        site: a policy site name whose ``site_pipeline`` the defense should survive.
        site_jpeg_quality: ad-hoc JPEG quality the site re-encodes with (1-100).
        site_max_side: ad-hoc longest side the site resizes to (pixels).
        site_blur_sigma: ad-hoc Gaussian blur sigma the site applies (pixels, > 0).
    """

    preset: str = "balanced"
    size_mode: SizeMode = "any"
    on_no_face: OnNoFace = "skip"
    site: str | None = None
    site_jpeg_quality: int | None = None
    site_max_side: int | None = None
    site_blur_sigma: float | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.size_mode not in SIZE_MODES:
            raise ValueError(f"size_mode must be one of {SIZE_MODES}, got {self.size_mode!r}")
        if self.on_no_face not in ON_NO_FACE:
            raise ValueError(f"on_no_face must be one of {ON_NO_FACE}, got {self.on_no_face!r}")
        if self.site_jpeg_quality is not None and not 1 <= self.site_jpeg_quality <= 100:
            raise ValueError(f"site_jpeg_quality must be in 1..100, got {self.site_jpeg_quality}")
        if self.site_max_side is not None and self.site_max_side < 16:
            raise ValueError(f"site_max_side must be at least 16, got {self.site_max_side}")
        if self.site_blur_sigma is not None and not 0 < self.site_blur_sigma <= 10:
            raise ValueError(f"site_blur_sigma must be in (0, 10], got {self.site_blur_sigma}")

    def to_params(self) -> dict[str, str]:
        """Query-string form: only the options that differ from the defaults."""
        default = ProtectOptions()
        return {
            k: str(v) for k, v in asdict(self).items()
            if v is not None and v != getattr(default, k)
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ProtectOptions:
        """Parse string parameters (query string, form fields); raises ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for name, value in params.items():
            if name in ("site_jpeg_quality", "site_max_side"):
                try:
                    kwargs[name] = int(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{name} must be an integer, got {value!r}") from None
            elif name == "site_blur_sigma":
                try:
                    kwargs[name] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{name} must be a number, got {value!r}") from None
            else:
                kwargs[name] = str(value)
        return cls(**kwargs)
