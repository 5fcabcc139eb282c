"""Crop geometry, extraction, the feathered paste-back and the tensor helpers."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grasp_guard.faces.detect import FaceBox
from grasp_guard.faces.regions import (
    BUCKETS,
    FaceRegion,
    Square,
    crosstalk_maps,
    delivery_maps,
    extract_crops,
    feather_mask,
    from_tensor,
    in_image_mask,
    paste,
    paste_weights,
    plan_regions,
    round_trip_matrix,
    snap_to_bucket,
    to_tensor,
    whole_image_region,
)

ASTRONAUT_HAAR_BOX = FaceBox(177, 67, 93, 93, 44.0)  # what HaarDetector finds


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Mid-range, gently varying pixels: no clipping when a perturbation is added."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 40 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None]
    noise = rng.integers(-20, 21, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def random_crops(regions: list[FaceRegion], seed: int, amplitude: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-amplitude, amplitude + 1, (r.bucket, r.bucket, 3)) for r in regions]


def perturbed(crops: list[np.ndarray], deltas: list[np.ndarray]) -> list[np.ndarray]:
    return [np.clip(c.astype(int) + d, 0, 255).astype(np.uint8) for c, d in zip(crops, deltas)]


def covered(shape: tuple[int, ...], regions: list[FaceRegion]) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for r in regions:
        c = r.crop
        mask[max(c.y, 0):max(c.y1, 0), max(c.x, 0):max(c.x1, 0)] = True
    return mask


@pytest.mark.parametrize(("side", "bucket"), [
    (1, 64), (64, 64), (65, 96), (96, 96), (129, 160), (500, 512), (512, 512), (513, 512),
    (4000, 512),
])
def test_snap_to_bucket(side: int, bucket: int) -> None:
    assert snap_to_bucket(side) == bucket


def test_astronaut_region_is_framed_like_celeba() -> None:
    (region,) = plan_regions((512, 512, 3), [ASTRONAUT_HAAR_BOX])
    # 2.0 × 93 = 186 → bucket 192, centred 0.15 × 93 ≈ 14 px above the box centre.
    assert region.bucket == 192 and region.crop == Square(128, 4, 192)
    assert region.frame == Square(2, 3, 186)
    assert region.scale == 1.0 and not region.downscaled
    face = region.face
    above, below = face.y - region.crop.y, region.crop.y1 - face.y1
    assert above > below  # forehead and hair, as in CelebA crops


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[tuple[int, int], FaceBox]:
    height = draw(st.integers(8, 3000))
    width = draw(st.integers(8, 3000))
    w = draw(st.integers(1, width))
    h = draw(st.integers(1, height))
    x = draw(st.integers(0, width - w))
    y = draw(st.integers(0, height - h))
    return (height, width), FaceBox(x, y, w, h)


@settings(max_examples=400, deadline=None)
@given(case=image_and_box(), context=st.floats(1.4, 3.0), shift=st.floats(-0.2, 0.2))
def test_plan_regions_invariants(
    case: tuple[tuple[int, int], FaceBox], context: float, shift: float
) -> None:
    (height, width), box = case
    (r,) = plan_regions((height, width), [box], context=context, shift_up=shift)
    c = r.crop
    assert r.bucket in BUCKETS
    if r.downscaled:
        assert r.bucket == max(BUCKETS) and c.side > max(BUCKETS)
    else:
        assert c.side == r.bucket
    # The crop holds the face box.
    assert c.x <= r.face.x and r.face.x1 <= c.x1 and c.y <= r.face.y and r.face.y1 <= c.y1
    # Inside the image along each axis that is long enough, else spanning all of it.
    for start, end, length in ((c.x, c.x1, width), (c.y, c.y1, height)):
        if c.side <= length:
            assert 0 <= start and end <= length
        else:
            assert start <= 0 and end >= length
    f = r.frame
    assert 0 <= f.x and f.x1 <= r.bucket and 0 <= f.y and f.y1 <= r.bucket and f.side >= 1


def test_plan_regions_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="outside"):
        plan_regions((100, 100), [FaceBox(200, 0, 10, 10)])
    with pytest.raises(ValueError, match="context"):
        plan_regions((100, 100), [FaceBox(0, 0, 10, 10)], context=1.1, shift_up=0.15)


def test_extract_takes_exact_pixels_inside_the_image() -> None:
    rgb = smooth_image(400, 500)
    (r,) = plan_regions(rgb.shape, [FaceBox(200, 150, 60, 60)])
    (crop,) = extract_crops(rgb, [r])
    assert crop.shape == (r.bucket, r.bucket, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, rgb[r.crop.y:r.crop.y1, r.crop.x:r.crop.x1])


def test_extract_mirrors_where_the_image_is_smaller_than_the_crop() -> None:
    rgb = smooth_image(40, 30)
    (r,) = plan_regions(rgb.shape, [FaceBox(5, 8, 20, 20)])
    assert r.bucket == 64 and r.crop.x < 0 and r.crop.y < 0
    (crop,) = extract_crops(rgb, [r])
    ox, oy = -r.crop.x, -r.crop.y
    np.testing.assert_array_equal(crop[oy:oy + 40, ox:ox + 30], rgb)
    np.testing.assert_array_equal(crop[oy - 1, ox:ox + 30], rgb[0])  # symmetric mirror
    np.testing.assert_array_equal(crop[oy + 40, ox:ox + 30], rgb[-1])


def test_feather_mask_is_one_on_the_face_and_zero_at_the_crop_border() -> None:
    rgb = smooth_image(600, 600)
    (r,) = plan_regions(rgb.shape, [FaceBox(250, 250, 80, 80)])
    m = feather_mask(r)
    assert m.shape == (r.bucket, r.bucket) and m.dtype == np.float32
    fy, fx = r.face.y - r.crop.y, r.face.x - r.crop.x
    np.testing.assert_array_equal(m[fy:fy + r.face.h, fx:fx + r.face.w], 1.0)
    for edge in (m[0], m[-1], m[:, 0], m[:, -1]):
        np.testing.assert_array_equal(edge, 0.0)
    assert m.min() >= 0.0 and m.max() <= 1.0
    row = m[fy + r.face.h // 2]
    assert np.all(np.diff(row[:fx + 1]) >= 0) and np.all(np.diff(row[fx + r.face.w - 1:]) <= 0)


def test_feather_mask_has_no_ramp_along_the_image_border() -> None:
    rgb = smooth_image(300, 600)
    (r,) = plan_regions(rgb.shape, [FaceBox(0, 100, 60, 60)])
    assert r.crop.x == 0
    m = feather_mask(r)
    fy = r.face.y - r.crop.y
    np.testing.assert_array_equal(m[fy:fy + r.face.h, 0], 1.0)
    np.testing.assert_array_equal(m[:, -1], 0.0)


def test_feather_zero_is_a_hard_edge() -> None:
    (r,) = plan_regions((600, 600), [FaceBox(250, 250, 80, 80)])
    np.testing.assert_array_equal(feather_mask(r, feather=0.0), 1.0)


def test_paste_with_no_perturbation_is_the_identity() -> None:
    rgb = smooth_image(700, 900)
    boxes = [FaceBox(100, 100, 80, 80), FaceBox(160, 150, 90, 90), FaceBox(600, 200, 300, 300)]
    regions = plan_regions(rgb.shape, boxes) + [whole_image_region(rgb.shape)]
    out = paste(rgb, regions, extract_crops(rgb, regions))
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb


def test_paste_changes_nothing_outside_the_crops() -> None:
    rgb = smooth_image(500, 700)
    regions = plan_regions(rgb.shape, [FaceBox(60, 200, 70, 70), FaceBox(400, 40, 50, 50),
                                       FaceBox(150, 230, 60, 60)])
    crops = extract_crops(rgb, regions)
    out = paste(rgb, regions, perturbed(crops, random_crops(regions, seed=1)))
    inside = covered(rgb.shape, regions)
    np.testing.assert_array_equal(out[~inside], rgb[~inside])
    assert np.any(out[inside] != rgb[inside])
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 6


def test_paste_puts_the_protected_crop_on_the_face_box() -> None:
    rgb = smooth_image(500, 700)
    (r,) = plan_regions(rgb.shape, [FaceBox(300, 200, 70, 70)])
    (crop,) = extract_crops(rgb, [r])
    (protected,) = perturbed([crop], random_crops([r], seed=2))
    out = paste(rgb, [r], [protected])
    f, c = r.face, r.crop
    np.testing.assert_array_equal(
        out[f.y:f.y1, f.x:f.x1], protected[f.y - c.y:f.y1 - c.y, f.x - c.x:f.x1 - c.x])


def test_paste_scales_the_perturbation_by_the_feather_mask() -> None:
    rgb = np.full((400, 400, 3), 100, np.uint8)
    (r,) = plan_regions(rgb.shape, [FaceBox(170, 180, 50, 50)])
    (crop,) = extract_crops(rgb, [r])
    out = paste(rgb, [r], [crop + np.uint8(20)], feather=0.7)
    expected = np.rint(20 * feather_mask(r, feather=0.7)).astype(int)
    c = r.crop
    np.testing.assert_array_equal(out[c.y:c.y1, c.x:c.x1, 1].astype(int) - 100, expected)


def test_overlapping_regions_take_the_highest_weight() -> None:
    rgb = np.full((300, 400, 3), 100, np.uint8)
    regions = plan_regions(rgb.shape, [FaceBox(120, 120, 50, 50), FaceBox(190, 110, 50, 50)])
    a, b = regions
    assert a.crop.x1 > b.face.x  # each crop reaches into the other's face box
    crops = extract_crops(rgb, regions)
    out = paste(rgb, regions, [crops[0] + np.uint8(10), crops[1] - np.uint8(10)])
    d = out.astype(int) - 100
    assert np.all(d[a.face.y:a.face.y1, a.face.x:a.face.x1] == 10)
    assert np.all(d[b.face.y:b.face.y1, b.face.x:b.face.x1] == -10)
    assert np.abs(d).max() == 10  # never the sum of two perturbations


def test_a_small_face_in_a_large_faces_crop_keeps_its_own_box() -> None:
    rgb = np.full((600, 600, 3), 100, np.uint8)
    regions = plan_regions(rgb.shape, [FaceBox(150, 150, 160, 160), FaceBox(330, 200, 50, 50)])
    big, small = regions
    assert big.crop.x1 > small.face.x1  # the small face lies inside the big face's crop
    crops = extract_crops(rgb, regions)
    out = paste(rgb, regions, [crops[0] + np.uint8(10), crops[1] - np.uint8(10)])
    d = out.astype(int) - 100
    f = small.face
    assert np.all(d[f.y:f.y1, f.x:f.x1] == -10)


@pytest.mark.parametrize("boxes", [
    [FaceBox(150, 150, 160, 160), FaceBox(330, 200, 50, 50)],
    [FaceBox(120, 120, 50, 50), FaceBox(190, 110, 50, 50), FaceBox(150, 200, 70, 70)],
    [FaceBox(300, 300, 420, 420), FaceBox(620, 520, 120, 120)],  # the first crop is downscaled
])
def test_paste_weights_are_what_each_crop_keeps(boxes: list[FaceBox]) -> None:
    rgb = np.full((1100, 1100, 3), 100, np.uint8)
    regions = plan_regions(rgb.shape, boxes)
    assert all(r.crop.x >= 0 and r.crop.y >= 0 and r.crop.x1 <= 1100 for r in regions)
    weights = paste_weights(regions)
    base = extract_crops(rgb, regions)
    for i, region in enumerate(regions):
        crops = [c + np.uint8(40) if j == i else c for j, c in enumerate(base)]
        kept = extract_crops(paste(rgb, regions, crops, feather=0.5), regions)[i]
        got = (kept.astype(float) - base[i])[..., 0] / 40.0
        error = np.abs(got - weights[i])
        if region.downscaled:  # the resamplings blur the edge of a neighbour's owned box
            assert error.mean() < 0.01 and (error > 0.1).mean() < 0.02
        else:
            assert error.max() <= 0.5 / 40
    (alone,) = paste_weights(regions[:1])
    np.testing.assert_array_equal(alone, feather_mask(regions[0]))


def test_big_face_is_downscaled_and_round_trips() -> None:
    rgb = smooth_image(1400, 1300)
    (r,) = plan_regions(rgb.shape, [FaceBox(450, 500, 400, 400)])
    assert r.downscaled and r.bucket == 512 and r.crop.side == 800
    assert r.scale == pytest.approx(0.64)
    (crop,) = extract_crops(rgb, [r])
    assert crop.shape == (512, 512, 3)
    np.testing.assert_array_equal(paste(rgb, [r], [crop]), rgb)

    # A smooth perturbation survives upscaling on paste and downscaling on re-extraction.
    yy, xx = np.mgrid[0:512, 0:512]
    delta = np.rint(5 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(int)[..., None]
    (protected,) = perturbed([crop], [delta])
    out = paste(rgb, [r], [protected])
    inside = covered(rgb.shape, [r])
    np.testing.assert_array_equal(out[~inside], rgb[~inside])
    (again,) = extract_crops(out, [r])
    core = feather_mask(r) == 1.0
    error = np.abs(again.astype(int) - protected.astype(int))[core]
    assert error.mean() < 0.6 and error.max() <= 2


@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (700, 600), (40, 41)])
def test_whole_image_region(shape: tuple[int, int]) -> None:
    rgb = smooth_image(*shape)
    r = whole_image_region(rgb.shape)
    assert r.bucket == snap_to_bucket(max(shape))
    assert r.crop.x <= 0 and r.crop.y <= 0
    assert r.crop.x1 >= shape[1] and r.crop.y1 >= shape[0]
    (crop,) = extract_crops(rgb, [r])
    assert crop.shape == (r.bucket, r.bucket, 3)
    np.testing.assert_array_equal(paste(rgb, [r], [crop]), rgb)
    out = paste(rgb, [r], [np.clip(crop.astype(int) + 3, 0, 255).astype(np.uint8)])
    assert np.all(out != rgb)  # the mask is 1 over every pixel


def test_paste_validates_its_inputs() -> None:
    rgb = smooth_image(200, 200)
    (r,) = plan_regions(rgb.shape, [FaceBox(50, 50, 40, 40)])
    (crop,) = extract_crops(rgb, [r])
    with pytest.raises(ValueError, match="protected crops"):
        paste(rgb, [r], [])
    with pytest.raises(ValueError, match="protected crop must be"):
        paste(rgb, [r], [crop[:-1]])
    with pytest.raises(ValueError, match="planned for an image"):
        paste(smooth_image(200, 201), [r], [crop])
    with pytest.raises(ValueError, match="feather"):
        paste(rgb, [r], [crop], feather=1.5)
    np.testing.assert_array_equal(paste(rgb, [], []), rgb)


def test_tensor_round_trip() -> None:
    rgb = skimage.data.astronaut()
    regions = plan_regions(rgb.shape, [ASTRONAUT_HAAR_BOX, FaceBox(20, 20, 90, 90)])
    crops = extract_crops(rgb, regions)
    batch = to_tensor(crops)
    assert batch.shape == (2, 3, 192, 192) and batch.dtype == torch.float32
    assert batch.is_contiguous() and 0.0 <= batch.min() and batch.max() <= 1.0
    assert batch[0, 0, 5, 7] == pytest.approx(crops[0][5, 7, 0] / 255)
    back = from_tensor(batch)
    for a, b in zip(back, crops):
        np.testing.assert_array_equal(a, b)


def test_from_tensor_clamps_and_rounds() -> None:
    values = torch.tensor([-0.5, 0.0, 0.4 / 255, 1.6 / 255, 1.0, 2.0])
    (crop,) = from_tensor(values.view(1, 1, 1, 6).expand(1, 3, 6, 6))
    assert crop.dtype == np.uint8 and crop.shape == (6, 6, 3)
    assert crop[0, :, 0].tolist() == [0, 0, 0, 2, 255, 255]


def test_tensor_helpers_reject_bad_shapes() -> None:
    with pytest.raises(ValueError):
        to_tensor([])
    with pytest.raises(ValueError):
        to_tensor([np.zeros((64, 64, 3), np.uint8), np.zeros((96, 96, 3), np.uint8)])
    with pytest.raises(ValueError):
        from_tensor(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(("bucket", "side"), [(64, 200), (64, 192), (32, 33)])
def test_the_round_trip_matrix_is_the_paste_and_recut_of_a_shrunk_crop(bucket: int, side: int) -> None:
    rgb = np.full((side, side, 3), 128, np.uint8)
    region = whole_image_region(rgb.shape, buckets=(bucket,))
    assert region.downscaled
    rng = np.random.default_rng(0)
    d = rng.integers(-6, 7, (bucket, bucket, 3))
    protected = np.clip(extract_crops(rgb, [region])[0] + d, 0, 255).astype(np.uint8)
    recut = extract_crops(paste(rgb, [region], [protected], feather=0.0), [region])[0]
    m = round_trip_matrix(bucket, side)
    expected = np.einsum("ij,jkc,kl->ilc", m.T, d.astype(np.float32), m)
    # the paste rounds at full size and the re-cut rounds again: within one level
    assert np.abs(recut.astype(np.float32) - 128 - expected).max() <= 1.0
    assert np.allclose(round_trip_matrix(bucket, bucket), np.eye(bucket))


def test_the_delivery_of_a_crop_past_the_border_mirrors_its_perturbation() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(60, 200, (150, 90, 3)).astype(np.uint8)
    (region,) = plan_regions(rgb.shape, [FaceBox(5, 50, 60, 60)])
    crop = region.crop
    assert crop.x < 0 or crop.x1 > 90  # wider than the photo: mirrored on a side
    maps = delivery_maps(region)
    assert maps is not None and maps.shape == (2, region.bucket, region.bucket)
    d = rng.integers(-6, 7, (region.bucket, region.bucket, 3))
    protected = np.clip(extract_crops(rgb, [region])[0] + d, 0, 255).astype(np.uint8)
    recut = extract_crops(paste(rgb, [region], [protected], feather=0.0), [region])[0]
    expected = np.einsum("ij,jkc,kl->ilc", maps[0].T, d.astype(np.float32), maps[1])
    actual = recut.astype(np.float32) - extract_crops(rgb, [region])[0]
    assert np.abs(actual - expected).max() <= 1e-4  # the padding carries its mirror
    outside = (np.arange(region.bucket) + crop.x < 0) | (np.arange(region.bucket) + crop.x >= 90)
    assert np.abs(expected[:, outside]).max() > 0
    # a crop inside the photo at its own size has none
    (inner,) = plan_regions(rgb.shape, [FaceBox(30, 60, 30, 30)])
    assert inner.crop.x >= 0 and inner.crop.x1 <= 90 and delivery_maps(inner) is None


def test_crosstalk_maps_are_what_a_crop_recuts_of_its_neighbours_paste() -> None:
    # a couple: two faces larger than the top bucket whose crops share a third of their
    # pixels, and one crop runs past the bottom (mirrored there)
    rng = np.random.default_rng(2)
    rgb = np.full((650, 1100, 3), 128, np.uint8)
    regions = plan_regions(rgb.shape, [FaceBox(150, 250, 330, 330), FaceBox(600, 150, 300, 300)])
    assert all(r.downscaled and r.bucket == 512 for r in regions)
    assert regions[0].crop.meets(regions[1].crop) and regions[0].crop.y1 > 650
    originals = extract_crops(rgb, regions)
    deltas = [rng.integers(-6, 7, o.shape) * w[..., None] for o, w in
              zip(originals, paste_weights(regions))]
    protected = [np.clip(o + np.rint(d), 0, 255).astype(np.uint8) for o, d in zip(originals, deltas)]
    recut = extract_crops(paste(rgb, regions, protected, weighted=False), regions)

    def carried(maps: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.einsum("ij,jkc,kl->ilc", maps[0].T, d.astype(np.float32), maps[1],
                         optimize=True)

    for i, j in ((0, 1), (1, 0)):
        maps = crosstalk_maps(regions[i], regions[j])
        assert maps is not None and maps.shape == (2, 512, 512)
        own = carried(delivery_maps(regions[i]), protected[i].astype(np.float32) - originals[i])
        other = carried(maps, protected[j].astype(np.float32) - originals[j])
        actual = recut[i].astype(np.float32) - originals[i]
        assert np.abs(other).mean() > 0.15  # the neighbour's perturbation is no detail
        # rounded at full size and again when re-cut; owners' edges resampled
        assert np.sqrt(np.mean((actual - own - other) ** 2)) < 0.6
        assert np.sqrt(np.mean((actual - own) ** 2)) > 2 * np.sqrt(np.mean((actual - own - other) ** 2))
    (far,) = plan_regions(rgb.shape, [FaceBox(950, 500, 60, 60)])
    assert crosstalk_maps(far, regions[0]) is None


def test_a_paste_of_weighted_crops_keeps_the_owners_of_the_paste_weights() -> None:
    rng = np.random.default_rng(4)
    rgb = smooth_image(200, 260)
    regions = plan_regions(rgb.shape, [FaceBox(60, 60, 60, 60), FaceBox(120, 70, 50, 50)])
    assert regions[0].crop.meets(regions[1].crop) and not any(r.downscaled for r in regions)
    originals = extract_crops(rgb, regions)
    deltas = [rng.integers(-8, 9, o.shape).astype(np.float32) for o in originals]
    whole = [np.clip(o + d, 0, 255).astype(np.uint8) for o, d in zip(originals, deltas)]
    carrying = [np.clip(np.rint(o + d * w[..., None]), 0, 255).astype(np.uint8)
                for o, d, w in zip(originals, deltas, paste_weights(regions))]
    feathered = paste(rgb, regions, whole).astype(int)
    unweighted = paste(rgb, regions, carrying, weighted=False).astype(int)
    assert np.abs(feathered - unweighted).max() <= 1  # the same pixels from the same crops
    # feather 0 would hand the pixels the feathered weights gave one face to the other
    assert np.abs(paste(rgb, regions, carrying, feather=0.0).astype(int) - feathered).max() > 1


def test_the_in_image_mask_leaves_out_the_padding_past_the_border() -> None:
    rgb = smooth_image(40, 30)
    (r,) = plan_regions(rgb.shape, [FaceBox(5, 8, 20, 20)])
    ox, oy = -r.crop.x, -r.crop.y
    expected = np.zeros((r.bucket, r.bucket), bool)
    expected[oy:oy + 40, ox:ox + 30] = True
    np.testing.assert_array_equal(in_image_mask(r), expected)
    (shrunk,) = plan_regions((2000, 900, 3), [FaceBox(150, 700, 600, 600)])
    assert shrunk.downscaled and shrunk.crop.x == -150 and shrunk.crop.x1 == 1050
    cols = in_image_mask(shrunk)[shrunk.bucket // 2]
    past = round(150 / shrunk.crop.side * shrunk.bucket)  # 64 of 512 columns each side
    assert cols[past:-past].all() and not cols[:past].any() and not cols[-past:].any()


def test_squares_meet_when_they_share_a_pixel() -> None:
    a = Square(10, 10, 10)
    assert a.meets(Square(19, 19, 5)) and Square(19, 19, 5).meets(a)
    assert a.meets(Square(0, 0, 40))  # one inside the other
    assert not a.meets(Square(20, 10, 10)) and not a.meets(Square(10, 20, 10))  # edge to edge
