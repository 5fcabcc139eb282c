"""Face detectors: one small protocol, the embedded Haar cascade, and the frame of a CNN
detector run from a model file (YuNet from a user's model; CenterFace: ``faces.centerface``).

Every detector takes upright RGB pixels (the codec has already applied the EXIF orientation)
and returns face boxes in the image's own pixel coordinates, already filtered by size, with
overlapping detections merged so that one face never gets two crops, at most
``max_faces`` of them, the most confident first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from grasp_guard.errors import ConfigError

logger = logging.getLogger(__name__)

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is an (H, W, 3) uint8 array with H, W ≥ 1."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        got = rgb.dtype if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected a uint8 numpy array, got {got}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {rgb.shape}")


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in pixels: columns ``x``..``x + w``, rows ``y``..``y + h``.

    ``score`` is the detector's confidence: higher is surer, comparable only between boxes
    of the same detector (Haar: the number of raw detections merged into the box; YuNet:
    its face probability).
    """

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.w < 1 or self.h < 1:
            raise ValueError(f"a face box needs w, h >= 1, got w={self.w} h={self.h}")

    @property
    def x1(self) -> int:
        """One past the last column."""
        return self.x + self.w

    @property
    def y1(self) -> int:
        """One past the last row."""
        return self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h

    def intersection(self, other: FaceBox) -> int:
        """Area shared with ``other``, in pixels."""
        iw = min(self.x1, other.x1) - max(self.x, other.x)
        ih = min(self.y1, other.y1) - max(self.y, other.y)
        return max(iw, 0) * max(ih, 0)

    def iou(self, other: FaceBox) -> float:
        """Intersection over union with ``other``, in [0, 1]."""
        inter = self.intersection(other)
        return inter / (self.area + other.area - inter)

    def union(self, other: FaceBox) -> FaceBox:
        """The smallest box holding both; the higher score."""
        x, y = min(self.x, other.x), min(self.y, other.y)
        return FaceBox(
            x, y, max(self.x1, other.x1) - x, max(self.y1, other.y1) - y,
            max(self.score, other.score),
        )

    def clip(self, height: int, width: int) -> FaceBox | None:
        """This box cut to an image of ``height`` × ``width``; ``None`` when nothing is left."""
        x, y = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x1, width), min(self.y1, height)
        if x1 <= x or y1 <= y:
            return None
        return FaceBox(x, y, x1 - x, y1 - y, self.score)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in upright RGB pixels."""

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in ``rgb`` (H, W, 3) uint8, in image coordinates, most confident first."""
        ...


class KnownBoxes:
    """A detector answering with faces found beforehand (a recorded run, a caller that knows)."""

    def __init__(self, boxes: list[FaceBox]) -> None:
        self.boxes = list(boxes)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)


def merge_overlapping(
    boxes: list[FaceBox], iou: float = 0.3, contain: float = 0.5
) -> list[FaceBox]:
    """Merge boxes that cover the same face into their union, most confident first.

    Two boxes are the same face when their IoU reaches ``iou`` or when at least ``contain``
    of the smaller one lies inside the larger (a detection inside a face, which IoU alone
    misses). Merging repeats until no two boxes qualify, since a union can reach a third box.
    Union rather than non-maximum suppression: the protected region must cover every pixel
    that any detection called face.

    Args:
        boxes: detections in one image.
        iou: IoU at or above which two boxes merge, in (0, 1].
        contain: share of the smaller box's area inside the other at or above which they
            merge, in (0, 1].

    Returns:
        Disjoint-enough boxes sorted by score, then area, descending; each merged box keeps
        the highest score of its members.
    """
    if not 0 < iou <= 1 or not 0 < contain <= 1:
        raise ValueError(f"iou and contain must be in (0, 1], got iou={iou} contain={contain}")
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                inter = a.intersection(b)
                if inter and (a.iou(b) >= iou or inter >= contain * min(a.area, b.area)):
                    merged[i] = a.union(b)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return sorted(merged, key=lambda b: (-b.score, -b.area, b.y, b.x))


@dataclass(frozen=True)
class DetectionSettings:
    """What every detector does around its model: speed-up, size filter, merge, cap.

    Attributes:
        max_side: detection runs on a copy downscaled (area) to this longest side; boxes are
            mapped back to full resolution. Faces under the model's smallest window at that
            scale (24 px for Haar) are missed: 24 · longest side / ``max_side`` pixels.
        min_face_px: drop faces whose shorter box side is under this many pixels.
        min_face_frac: drop faces whose shorter box side is under this share of the image's
            shorter side (background faces, false positives in texture).
        max_faces: keep at most this many faces, the most confident.
        merge_iou: IoU at which two detections are the same face (see ``merge_overlapping``).
    """

    max_side: int = 1024
    min_face_px: int = 32
    min_face_frac: float = 0.02
    max_faces: int = 16
    merge_iou: float = 0.3

    def __post_init__(self) -> None:
        if self.max_side < 64:
            raise ValueError(f"max_side must be at least 64, got {self.max_side}")
        if self.min_face_px < 1:
            raise ValueError(f"min_face_px must be at least 1, got {self.min_face_px}")
        if not 0 <= self.min_face_frac < 1:
            raise ValueError(f"min_face_frac must be in [0, 1), got {self.min_face_frac}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if not 0 < self.merge_iou <= 1:
            raise ValueError(f"merge_iou must be in (0, 1], got {self.merge_iou}")

    def min_face_size(self, height: int, width: int) -> int:
        """The smallest face side kept in an image of ``height`` × ``width``, in pixels."""
        return max(self.min_face_px, math.ceil(self.min_face_frac * min(height, width)))


class _ScaledDetector:
    """Shared frame of the detectors: downscale, run the model, map back, filter, merge.

    Subclasses implement ``_detect_small``. A lock serialises calls: OpenCV detectors keep
    per-call state (YuNet's input size) and are not safe to share between threads.
    """

    def __init__(self, settings: DetectionSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def _detect_small(self, rgb: np.ndarray, min_side: int) -> list[FaceBox]:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in ``rgb`` (H, W, 3) uint8, in image coordinates, most confident first."""
        check_rgb(rgb)
        height, width = rgb.shape[:2]
        scale = min(1.0, self.settings.max_side / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        sx, sy = width / small.shape[1], height / small.shape[0]
        min_side = self.settings.min_face_size(height, width)
        started = time.perf_counter()
        with self._lock:
            raw = self._detect_small(small, max(1, math.floor(min_side / max(sx, sy))))
        boxes = []
        for b in raw:
            x, y = math.floor(b.x * sx), math.floor(b.y * sy)
            full = FaceBox(x, y, math.ceil(b.x1 * sx) - x, math.ceil(b.y1 * sy) - y, b.score)
            clipped = full.clip(height, width)
            if clipped is not None and min(clipped.w, clipped.h) >= min_side:
                boxes.append(clipped)
        faces = merge_overlapping(boxes, self.settings.merge_iou)
        if len(faces) > self.settings.max_faces:
            logger.info("%d faces found, keeping the %d most confident",
                        len(faces), self.settings.max_faces)
            faces = faces[: self.settings.max_faces]
        logger.debug("%s: %d raw, %d faces in %dx%d (detected at %dx%d) in %.3fs",
                     type(self).__name__, len(raw), len(faces), width, height,
                     small.shape[1], small.shape[0], time.perf_counter() - started)
        return faces


class HaarDetector(_ScaledDetector):
    """OpenCV's frontal-face Haar cascade (Viola–Jones), the embedded default.

    It needs no download: OpenCV 4.x ships the cascade under ``cv2.data.haarcascades``.
    Frontal, upright faces only; a profile or a strongly tilted face is missed. Its score is
    the number of raw detections merged into the box (``min_neighbors`` is the floor).

    Tuning, measured on images that ship with scikit-image: with ``min_neighbors=8`` and no
    histogram equalisation it finds 97 of the 100 LFW faces of ``lfw_subset`` (upscaled to
    75 px) and none of its 100 non-faces, while over 12 non-face photos at 4 scales the
    false positives fall from 60 (in 16 of 48 images; OpenCV's usual 5 with equalisation)
    to 19 (in 5). Texture (coins, gravel, a visor reflection) still fools it at times: a
    false positive costs one more crop and an invisible perturbation, but it also means a
    faceless image is no longer returned untouched. On the shared real photos it took 6
    patches of clothing and bokeh for faces and missed 3 of 6 faces in a group selfie;
    CenterFace (``faces.centerface``), the default once fetched, did neither.
    """

    name = "haar"

    def __init__(
        self,
        settings: DetectionSettings | None = None,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 8,
        cascade_path: str | Path | None = None,
    ) -> None:
        """Load the cascade.

        Args:
            settings: the shared detection settings (defaults when ``None``).
            scale_factor: image-pyramid step, > 1; smaller finds more, slower.
            min_neighbors: raw detections a face needs; higher means fewer false positives.
            cascade_path: another cascade XML; OpenCV's frontal-face default when ``None``.

        Raises:
            ConfigError: the cascade file is missing (OpenCV 5 no longer ships it) or invalid.
        """
        super().__init__(settings or DetectionSettings())
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        path = Path(cascade_path) if cascade_path is not None else _default_cascade()
        if not path.is_file():
            raise ConfigError(f"Haar cascade not found: {path}")
        self._cascade = cv2.CascadeClassifier()
        try:
            loaded = self._cascade.load(str(path))
        except cv2.error as e:
            raise ConfigError(f"{path} is not a valid OpenCV cascade file: {e}") from e
        if not loaded or self._cascade.empty():
            raise ConfigError(f"{path} is not a valid OpenCV cascade file")

    def _detect_small(self, rgb: np.ndarray, min_side: int) -> list[FaceBox]:
        # No histogram equalisation: on scikit-image's sample photos it doubled the false
        # positives on texture while LFW faces were found as often without it.
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        return [
            FaceBox(int(x), int(y), int(w), int(h), float(n))
            for (x, y, w, h), n in zip(rects, neighbours)
        ]


def _default_cascade() -> Path:
    root = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(root) / HAAR_CASCADE if root else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"OpenCV {cv2.__version__} does not ship {HAAR_CASCADE} (OpenCV 5 dropped the "
            "Haar cascades): install opencv-python-headless<5, pass cascade_path, or use the "
            "'yunet' detector with a model file"
        )
    return path


class ModelDetector(_ScaledDetector):
    """The frame of a CNN detector that OpenCV runs from a model file: its thresholds and
    its file checked, then :meth:`_load`."""

    kind = "face detector"  # the model's name in messages
    default_score = 0.5

    def __init__(
        self,
        model_path: str | Path,
        settings: DetectionSettings | None = None,
        *,
        score_threshold: float | None = None,
        nms_threshold: float = 0.3,
    ) -> None:
        """Load the model.

        Args:
            model_path: the model's ONNX file.
            settings: the shared detection settings (defaults when ``None``).
            score_threshold: minimum face score, in (0, 1); the detector's own default
                (``default_score``) when ``None``.
            nms_threshold: IoU above which the weaker of two boxes is dropped, in (0, 1].

        Raises:
            ConfigError: the file is missing or is not a model this OpenCV can run.
        """
        super().__init__(settings or DetectionSettings())
        score = self.default_score if score_threshold is None else score_threshold
        if not 0 < score < 1:
            raise ValueError(f"score_threshold must be in (0, 1), got {score}")
        if not 0 < nms_threshold <= 1:
            raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(f"{self.kind} model file not found: {path}")
        self.score_threshold = score
        self.nms_threshold = nms_threshold
        self._load(path)

    def _load(self, path: Path) -> None:
        raise NotImplementedError


class YuNetDetector(ModelDetector):
    """YuNet (OpenCV's CNN face detector) from an ONNX model file the user supplies.

    More accurate than Haar on tilted, partly profile and small faces. The model is not
    embedded: pass the path of e.g. ``face_detection_yunet_2023mar.onnx`` from the OpenCV
    model zoo. Its NMS is its own.
    """

    name = "yunet"
    kind = "YuNet"
    default_score = 0.7

    def _load(self, path: Path) -> None:
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ConfigError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs >= 4.5.4)")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), self.score_threshold, self.nms_threshold, 5000
            )
        except cv2.error as e:
            raise ConfigError(f"cannot load YuNet model {path}: {e}") from e

    def _detect_small(self, rgb: np.ndarray, min_side: int) -> list[FaceBox]:
        self._net.setInputSize((rgb.shape[1], rgb.shape[0]))
        _, rows = self._net.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if rows is None:
            return []
        boxes = []
        for row in rows:  # x, y, w, h, five landmarks (x, y), score
            x, y = math.floor(row[0]), math.floor(row[1])
            w = max(1, math.ceil(row[0] + row[2]) - x)
            h = max(1, math.ceil(row[1] + row[3]) - y)
            if min(w, h) >= min_side:
                boxes.append(FaceBox(x, y, w, h, float(row[14])))
        return boxes
