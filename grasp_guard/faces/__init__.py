"""Find faces and cut them into bucket-sized crops; paste protected crops back."""

from grasp_guard.faces.centerface import CenterFaceDetector
from grasp_guard.faces.choose import DETECTORS, default_detector, detector_from_spec
from grasp_guard.faces.detect import (
    DetectionSettings,
    FaceBox,
    FaceDetector,
    HaarDetector,
    KnownBoxes,
    YuNetDetector,
    merge_overlapping,
)
from grasp_guard.faces.regions import (
    BUCKETS,
    CELEBA_CONTEXT,
    CELEBA_SHIFT_UP,
    FaceRegion,
    Square,
    extract_crops,
    feather_mask,
    from_tensor,
    paste,
    paste_weights,
    plan_regions,
    snap_to_bucket,
    to_tensor,
    whole_image_region,
)

__all__ = [
    "BUCKETS",
    "CELEBA_CONTEXT",
    "CELEBA_SHIFT_UP",
    "DETECTORS",
    "CenterFaceDetector",
    "DetectionSettings",
    "FaceBox",
    "FaceDetector",
    "FaceRegion",
    "HaarDetector",
    "KnownBoxes",
    "Square",
    "YuNetDetector",
    "default_detector",
    "detector_from_spec",
    "extract_crops",
    "feather_mask",
    "from_tensor",
    "merge_overlapping",
    "paste",
    "paste_weights",
    "plan_regions",
    "snap_to_bucket",
    "to_tensor",
    "whole_image_region",
]
