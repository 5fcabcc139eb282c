"""verify: the common grid (an attacker edits the copy the site has, at its size), a site's
crop located in the original, copies that do not line up refused, and the verdict (judged
with the attacker's own framing too)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from grasp_guard.defense.metrics import psnr
from grasp_guard.errors import NotComparableError
from grasp_guard.verify import aligned, common_grid, verdict, verify


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_shrunk_copy_is_compared_with_the_original_shrunk_to_its_size() -> None:
    original, received = _image(120, 90), _image(96, 72, seed=1)
    before, after = common_grid(original, received)
    assert after is received  # the attacker's copy as it is, never upscaled
    np.testing.assert_array_equal(before, cv2.resize(original, (72, 96), interpolation=cv2.INTER_AREA))


def test_a_larger_copy_is_shrunk_onto_the_original() -> None:
    original, received = _image(60, 80), _image(120, 160, seed=1)
    before, after = common_grid(original, received)
    assert before is original and after.shape == original.shape


def test_copies_of_one_size_are_compared_as_they_are() -> None:
    original, received = _image(40, 40), _image(40, 40, seed=1)
    before, after = common_grid(original, received)
    assert before is original and after is received


@pytest.mark.parametrize(("dsr", "framed", "expected"), [
    (1.0, 0.9, "protected"),
    (1.0, 0.06, "partially protected"),  # holds only at our own crop
    (0.5, 1.0, "partially protected"),
    (0.0, 0.0, "unprotected"),
])
def test_the_verdict_is_judged_by_the_worse_framing(dsr: float, framed: float,
                                                     expected: str) -> None:
    assert verdict(dsr, framed) == expected


def _site(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    """What a site keeps of ``rgb``: a JPEG re-encode."""
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return np.asarray(Image.open(out).convert("RGB"))


def test_a_site_crop_is_cut_from_the_original_pixel_for_pixel() -> None:
    photo = data.astronaut()
    before, after = aligned(photo, _site(photo[30:470, 12:400]))  # a crop of another aspect
    np.testing.assert_array_equal(before, photo[30:470, 12:400])
    assert after.shape == (440, 388, 3)


@pytest.mark.parametrize("scale", [0.5, 1.3])
def test_a_cropped_and_scaled_copy_lines_up_on_the_coarser_grid(scale: float) -> None:
    photo = data.astronaut()
    part = photo[40:440, 60:380]  # 4:5, as a feed crops
    copy = _site(cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                            if scale < 1 else cv2.INTER_CUBIC))
    before, after = aligned(photo, copy)
    coarser = (200, 160) if scale < 1 else (400, 320)
    assert before.shape[:2] == after.shape[:2] == coarser
    # as close as the crop itself, resized: found to a small fraction of a pixel (ECC)
    resized = cv2.resize(part, coarser[::-1], interpolation=cv2.INTER_AREA)
    assert psnr(before, after) > psnr(resized, after) - 0.2 > 30


def test_a_trim_of_a_few_pixels_that_keeps_the_aspect_is_cut_not_resized() -> None:
    photo = data.chelsea()  # smooth: the resize alone reads 26 dB, out of register by 4 px
    before, _ = aligned(photo, photo[4:-4, 4:-4])
    np.testing.assert_array_equal(before, photo[4:-4, 4:-4])


def test_a_small_thumbnail_of_a_crop_is_found_below_orbs_own_pyramid() -> None:
    photo = cv2.resize(data.astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    copy = cv2.resize(photo[160:1760, 200:1480], (256, 320), interpolation=cv2.INTER_AREA)  # 0.2x
    pair = aligned(photo, copy)
    assert pair is not None and pair[0].shape == copy.shape and psnr(*pair) > 30


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 300, 3), (300, 1, 3)])
def test_an_image_too_thin_to_place_is_no_grid_not_a_crash(shape: tuple[int, int, int]) -> None:
    assert aligned(data.astronaut(), np.full(shape, 128, np.uint8)) is None


@pytest.mark.parametrize("other", [
    lambda photo: data.coffee()[:400, :400],  # another photo
    lambda photo: np.random.default_rng(0).integers(0, 256, photo.shape, dtype=np.uint8),
    lambda photo: np.roll(photo, 9, axis=1),  # shows what the original does not have
])
def test_a_copy_that_does_not_line_up_has_no_grid(other: object) -> None:
    photo = data.astronaut()
    assert aligned(photo, other(photo)) is None  # type: ignore[operator]


def test_verify_refuses_a_verdict_on_another_photo() -> None:
    def encode(rgb: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "PNG")
        return out.getvalue()

    with pytest.raises(NotComparableError, match="no verdict"):
        verify(encode(data.astronaut()), encode(data.coffee()), engine=None)  # type: ignore[arg-type]


def test_a_faces_psnr_is_over_the_photo_not_the_mirrored_padding_past_its_border() -> None:
    import torch

    from grasp_guard.faces.detect import FaceBox, KnownBoxes
    from grasp_guard.faces.regions import extract_crops, in_image_mask, plan_regions
    from grasp_guard.models.zoo import load_editor
    from grasp_guard.pipeline import Engine

    def encode(rgb: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "PNG")
        return out.getvalue()

    photo = cv2.resize(data.astronaut()[:300, 60:560], (120, 72), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).normal(0, 1, photo.shape)
    noise[60:] *= 6  # stronger by the bottom border, which the 96-px crop mirrors
    received = np.clip(photo + noise, 0, 255).round().astype(np.uint8)
    box = FaceBox(40, 20, 40, 40)
    report = verify(encode(photo), encode(received), Engine([load_editor("reference")],
                    torch.device("cpu")), detector=KnownBoxes([box]))
    region = plan_regions(photo.shape, [box])[0]
    (before,), (after,) = extract_crops(photo, [region]), extract_crops(received, [region])
    assert in_image_mask(region).mean() < 1  # the crop does run past the border
    assert report["faces"][0]["psnr"] == round(psnr(before, after, in_image_mask(region)), 2)


@pytest.mark.parametrize(("scores", "expected"), [
    ((1.0, 1.0, 0.6, 0.6), "partially protected"),  # mean 0.8: one editor still edits it
    ((1.0, 0.9, 0.8, 0.85), "protected"),
    ((0.0, 0.0, 0.0, 0.0), "unprotected"),
])
def test_the_verdict_is_the_worst_case_not_the_mean(scores: tuple[float, ...],
                                                     expected: str) -> None:
    assert verdict(*scores) == expected


class _TwoEditors:
    """An engine whose first editor is disrupted on every face and whose second is not on
    the second face."""

    labels = ("first", "second")

    def evaluate(self, before: list[np.ndarray], after: list[np.ndarray]) -> list[dict]:
        def score(dsr: float) -> dict[str, float]:
            return {"dsr_cmua": dsr, "dsr_ruiz": dsr, "dsr_framed": dsr}

        return [{"first": score(1.0), "second": score(1.0 if i == 0 else 0.6)}
                for i in range(len(before))]


def test_a_face_one_editor_still_edits_leaves_the_photo_not_protected() -> None:
    from grasp_guard.faces.detect import FaceBox, KnownBoxes

    def encode(rgb: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "PNG")
        return out.getvalue()

    photo = data.astronaut()
    boxes = [FaceBox(40, 40, 120, 120), FaceBox(300, 300, 120, 120)]
    report = verify(encode(photo), encode(photo), _TwoEditors(),  # type: ignore[arg-type]
                    detector=KnownBoxes(boxes))
    assert [f["verdict"] for f in report["faces"]] == ["protected", "partially protected"]
    assert report["dsr_cmua"] == 0.9  # the mean, as reported
    assert report["verdict"] == "partially protected"
