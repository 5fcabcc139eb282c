"""Which face detector runs: the default one, or one named in configuration."""

from __future__ import annotations

import inspect
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from grasp_guard.errors import ConfigError
from grasp_guard.faces.centerface import CenterFaceDetector
from grasp_guard.faces.detect import (
    DetectionSettings,
    FaceDetector,
    HaarDetector,
    YuNetDetector,
    _ScaledDetector,
)
from grasp_guard.models.weights import WeightsCache

logger = logging.getLogger(__name__)

DETECTORS: dict[str, type[_ScaledDetector]] = {
    "centerface": CenterFaceDetector, "haar": HaarDetector, "yunet": YuNetDetector,
}

_WITH_MODEL = ("centerface", "yunet")  # the detectors run from a model file
_warned: set[str] = set()


def _cached_centerface(cache: WeightsCache | None) -> Path | None:
    record = (cache or WeightsCache()).record("centerface")
    return None if record is None else record.path


def default_detector(cache: WeightsCache | None = None) -> FaceDetector:
    """CenterFace when ``models fetch centerface`` has cached it, else the embedded Haar
    cascade, which misses more faces and takes texture for faces: a warning says so, once
    per process and reason."""
    try:
        path = _cached_centerface(cache)
        if path is None:
            reason = "its model is not cached"
        else:
            return CenterFaceDetector(path)
    except ConfigError as e:  # an unreadable cache registry, a model that does not load
        reason = f"the cached CenterFace model cannot be used ({e})"
    if reason not in _warned:
        _warned.add(reason)
        logger.warning("face detection falls back to the Haar cascade: %s; it misses faces "
                       "that CenterFace finds (run `grasp-guard models fetch centerface`)", reason)
    return HaarDetector()


def detector_named(name: str, model_path: Path | None = None,
                   cache: WeightsCache | None = None) -> FaceDetector | None:
    """The detector a user names: ``auto`` (``None``: the default, :func:`default_detector`),
    ``haar``, ``centerface`` (``model_path``, else the cached model) or ``yunet``
    (``model_path``).

    Raises:
        ConfigError: an unknown name, a model file missing or not given, or not cached.
    """
    key = name.strip().lower()
    if key != "auto" and key not in DETECTORS:
        raise ConfigError(f"unknown face detector {name!r}; known: auto, {', '.join(DETECTORS)}")
    if model_path is not None and key not in _WITH_MODEL:
        raise ConfigError(f"the {key} detector takes no model file")
    if key == "auto":
        return None
    if key == "centerface" and model_path is None:
        model_path = _cached_centerface(cache)
        if model_path is None:
            raise ConfigError("the CenterFace model is not cached: run `grasp-guard models "
                              "fetch centerface`, or pass its file")
    if key in _WITH_MODEL:
        if model_path is None:
            raise ConfigError(f"the {key} detector needs its model file")
        return detector_from_spec(key, model_path=Path(model_path).expanduser())
    return detector_from_spec(key)


def detector_from_spec(name: str, **kwargs: Any) -> FaceDetector:
    """Build a detector by name from configuration values.

    Keyword arguments named like a ``DetectionSettings`` field go to the settings; the rest
    go to the detector's constructor (e.g. ``model_path`` for ``yunet`` and ``centerface``,
    ``min_neighbors`` for ``haar``).

    Raises:
        ConfigError: unknown name, unknown or invalid option, missing model file.
    """
    key = name.strip().lower()
    if key not in DETECTORS:
        raise ConfigError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    cls = DETECTORS[key]
    setting_names = {f.name for f in fields(DetectionSettings)}
    accepted = set(inspect.signature(cls).parameters) - {"settings"}
    unknown = set(kwargs) - setting_names - accepted
    if unknown:
        raise ConfigError(
            f"face detector {key!r} takes no option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(setting_names | accepted))}"
        )
    try:
        settings = DetectionSettings(**{k: v for k, v in kwargs.items() if k in setting_names})
        return cls(settings=settings, **{k: v for k, v in kwargs.items() if k in accepted})
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"face detector {key!r}: {e}") from e
