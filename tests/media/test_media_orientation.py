import numpy as np
import pytest
from _media_builders import gradient
from PIL import Image, ImageOps

from grasp_guard.media.orientation import ORIENTATIONS, normalise, to_stored, to_upright


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_to_upright_matches_pillow_exif_transpose(orientation: int) -> None:
    stored = gradient()
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img))
    np.testing.assert_array_equal(to_upright(stored, orientation), expected)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_to_stored_inverts_to_upright(orientation: int) -> None:
    stored = gradient()
    upright = to_upright(stored, orientation)
    assert upright.shape[:2] == (stored.shape[:2] if orientation <= 4 else stored.shape[1::-1])
    np.testing.assert_array_equal(to_stored(upright, orientation), stored)


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (9, 1), (65535, 1), (3, 3), (8, 8)])
def test_out_of_range_tags_mean_as_stored(value: int, expected: int) -> None:
    assert normalise(value) == expected


def test_single_channel_arrays_follow_the_same_geometry() -> None:
    stored = gradient()
    np.testing.assert_array_equal(to_upright(stored[:, :, 0], 6), to_upright(stored, 6)[:, :, 0])
