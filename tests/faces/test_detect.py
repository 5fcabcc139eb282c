"""Face detection: the Haar default on real photos, the shared frame, merging, the factory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from grasp_guard.errors import ConfigError
from grasp_guard.faces import detect as detect_mod
from grasp_guard.faces.choose import detector_from_spec
from grasp_guard.faces.detect import (
    DetectionSettings,
    FaceBox,
    FaceDetector,
    HaarDetector,
    YuNetDetector,
    merge_overlapping,
)

# Eileen Collins' face in skimage.data.astronaut(), labelled by hand (brow to chin).
ASTRONAUT_FACE = FaceBox(178, 64, 95, 100)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


def scaled(box: FaceBox, factor: float) -> FaceBox:
    return FaceBox(round(box.x * factor), round(box.y * factor),
                   round(box.w * factor), round(box.h * factor), box.score)


def test_haar_finds_the_astronaut(haar: HaarDetector, astronaut: np.ndarray) -> None:
    faces = haar.detect(astronaut)
    assert len(faces) == 1
    assert faces[0].iou(ASTRONAUT_FACE) > 0.6
    assert faces[0].score >= haar.min_neighbors


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_haar_is_consistent_across_scales(
    haar: HaarDetector, astronaut: np.ndarray, factor: float
) -> None:
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(astronaut, None, fx=factor, fy=factor, interpolation=interp)
    faces = haar.detect(resized)
    # The most confident box is the face at every scale. At 2x the visor's reflection also
    # passes (a known Haar false positive): only the first box is compared.
    assert faces
    assert scaled(faces[0], 1 / factor).iou(ASTRONAUT_FACE) > 0.6


def test_detection_on_a_downscaled_copy_maps_back(astronaut: np.ndarray) -> None:
    small_run = HaarDetector(DetectionSettings(max_side=256))
    faces = small_run.detect(astronaut)
    assert len(faces) == 1
    assert faces[0].iou(ASTRONAUT_FACE) > 0.6


def test_haar_mirrored_face_gives_the_mirrored_box(
    haar: HaarDetector, astronaut: np.ndarray
) -> None:
    (face,) = haar.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    mirrored = FaceBox(astronaut.shape[1] - face.x1, face.y, face.w, face.h)
    assert mirrored.iou(ASTRONAUT_FACE) > 0.6


def test_haar_recall_and_precision_on_lfw(haar: HaarDetector) -> None:
    # lfw_subset: 100 tight 25 px LFW faces, then 100 non-faces; upscale and add margin.
    images = skimage.data.lfw_subset()

    def prepare(gray: np.ndarray) -> np.ndarray:
        g = cv2.resize((gray * 255).round().astype(np.uint8), (75, 75),
                       interpolation=cv2.INTER_CUBIC)
        g = cv2.copyMakeBorder(g, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)

    found = sum(bool(haar.detect(prepare(g))) for g in images[:100])
    false = sum(bool(haar.detect(prepare(g))) for g in images[100::2])
    assert found >= 92
    assert false == 0


@pytest.mark.parametrize("image", [
    pytest.param(skimage.data.coffee(), id="coffee"),
    pytest.param(skimage.data.chelsea(), id="cat"),
    pytest.param(np.zeros((240, 320, 3), np.uint8), id="black"),
    pytest.param(np.full((100, 80, 3), 128, np.uint8), id="grey"),
])
def test_haar_finds_no_face(haar: HaarDetector, image: np.ndarray) -> None:
    assert haar.detect(image) == []


def test_min_face_size_drops_small_faces(astronaut: np.ndarray) -> None:
    assert HaarDetector(DetectionSettings(min_face_px=120)).detect(astronaut) == []
    assert HaarDetector(DetectionSettings(min_face_frac=0.25)).detect(astronaut) == []


@pytest.mark.parametrize(("settings", "hw", "expected"), [
    (DetectionSettings(min_face_px=32, min_face_frac=0.0), (100, 5000), 32),
    (DetectionSettings(min_face_px=32, min_face_frac=0.02), (4000, 6000), 80),
    (DetectionSettings(min_face_px=10, min_face_frac=0.1), (99, 200), 10),
])
def test_min_face_size(settings: DetectionSettings, hw: tuple[int, int], expected: int) -> None:
    assert settings.min_face_size(*hw) == expected


@pytest.mark.parametrize("rgb", [
    np.zeros((10, 10), np.uint8),
    np.zeros((10, 10, 4), np.uint8),
    np.zeros((10, 10, 3), np.float32),
    np.zeros((0, 10, 3), np.uint8),
])
def test_detect_rejects_non_rgb(haar: HaarDetector, rgb: np.ndarray) -> None:
    with pytest.raises(ValueError):
        haar.detect(rgb)


class Canned(detect_mod._ScaledDetector):
    """Returns fixed boxes in the coordinates of the (downscaled) image it is given."""

    def __init__(self, boxes: list[FaceBox], settings: DetectionSettings) -> None:
        super().__init__(settings)
        self.boxes = boxes
        self.seen: tuple[int, ...] = ()

    def _detect_small(self, rgb: np.ndarray, min_side: int) -> list[FaceBox]:
        self.seen = rgb.shape
        return self.boxes


def test_frame_downscales_maps_back_clips_filters_and_caps() -> None:
    settings = DetectionSettings(max_side=1000, min_face_px=40, min_face_frac=0.0, max_faces=2)
    boxes = [
        FaceBox(100, 100, 50, 50, score=3.0),   # → (200, 200, 100, 100)
        FaceBox(900, 400, 200, 200, score=9.0),  # sticks out right and bottom → clipped
        FaceBox(10, 10, 15, 15, score=99.0),     # 30 px at full size: below the minimum
        FaceBox(600, 100, 60, 60, score=1.0),    # the fourth, dropped by max_faces
    ]
    det = Canned(boxes, settings)
    faces = det.detect(np.zeros((1000, 2000, 3), np.uint8))
    assert det.seen == (500, 1000, 3)
    assert faces == [FaceBox(1800, 800, 200, 200, 9.0), FaceBox(200, 200, 100, 100, 3.0)]


def test_detectors_satisfy_the_protocol(haar: HaarDetector) -> None:
    assert isinstance(haar, FaceDetector)


@pytest.mark.parametrize(("boxes", "expected"), [
    pytest.param([], [], id="none"),
    pytest.param([FaceBox(0, 0, 10, 10, 1), FaceBox(20, 0, 10, 10, 2)],
                 [FaceBox(20, 0, 10, 10, 2), FaceBox(0, 0, 10, 10, 1)], id="disjoint"),
    pytest.param([FaceBox(0, 0, 10, 10, 1), FaceBox(10, 0, 10, 10, 2)],
                 [FaceBox(10, 0, 10, 10, 2), FaceBox(0, 0, 10, 10, 1)], id="touching"),
    pytest.param([FaceBox(0, 0, 10, 10, 1), FaceBox(2, 2, 10, 10, 5)],
                 [FaceBox(0, 0, 12, 12, 5)], id="iou-0.47"),
    pytest.param([FaceBox(0, 0, 10, 10, 1), FaceBox(6, 0, 10, 10, 5)],
                 [FaceBox(6, 0, 10, 10, 5), FaceBox(0, 0, 10, 10, 1)], id="iou-0.25"),
    pytest.param([FaceBox(0, 0, 100, 100, 1), FaceBox(40, 40, 20, 20, 7)],
                 [FaceBox(0, 0, 100, 100, 7)], id="contained"),
    pytest.param([FaceBox(0, 0, 10, 10, 1), FaceBox(30, 0, 10, 10, 3),
                  FaceBox(5, 0, 30, 10, 2)],
                 [FaceBox(0, 0, 40, 10, 3)], id="chain"),
])
def test_merge_overlapping(boxes: list[FaceBox], expected: list[FaceBox]) -> None:
    assert merge_overlapping(boxes, iou=0.3) == expected


def test_merge_one_face_never_gets_two_boxes() -> None:
    rng = np.random.default_rng(0)
    boxes = [FaceBox(int(x), int(y), int(s), int(s), float(sc)) for x, y, s, sc in
             zip(rng.integers(0, 300, 60), rng.integers(0, 300, 60),
                 rng.integers(10, 80, 60), rng.random(60))]
    merged = merge_overlapping(boxes, iou=0.3)
    for i, a in enumerate(merged):
        for b in merged[i + 1:]:
            assert a.iou(b) < 0.3
            assert a.intersection(b) < 0.5 * min(a.area, b.area)
    assert [m.score for m in merged] == sorted((m.score for m in merged), reverse=True)


def test_factory_builds_haar_with_settings_and_options() -> None:
    det = detector_from_spec(" Haar ", min_neighbors=7, max_faces=3, max_side=512)
    assert isinstance(det, HaarDetector)
    assert det.min_neighbors == 7
    assert det.settings == DetectionSettings(max_faces=3, max_side=512)


@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("mtcnn", {}, "unknown face detector"),
    ("haar", {"model_path": "x.onnx"}, "takes no option"),
    ("haar", {"max_faces": 0}, "max_faces"),
    ("haar", {"scale_factor": 1.0}, "scale_factor"),
    ("yunet", {}, "model_path"),
    ("yunet", {"model_path": "/nonexistent/yunet.onnx"}, "not found"),
])
def test_factory_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        detector_from_spec(name, **kwargs)


def test_yunet_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "yunet.onnx"
    path.write_bytes(b"not an onnx model")
    with pytest.raises(ConfigError, match="cannot load YuNet model"):
        YuNetDetector(path)


def test_haar_rejects_a_missing_or_invalid_cascade(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        HaarDetector(cascade_path=tmp_path / "missing.xml")
    junk = tmp_path / "junk.xml"
    junk.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ConfigError, match="not a valid OpenCV cascade"):
        HaarDetector(cascade_path=junk)


def test_haar_explains_an_opencv_without_cascades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(ConfigError, match="OpenCV 5 dropped"):
        HaarDetector()
