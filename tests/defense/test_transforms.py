"""Tests for the differentiable site transforms (JPEG, resize, blur, pipelines)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from grasp_guard.defense.transforms import (
    DiffJPEG,
    GaussianBlur,
    Identity,
    Resize,
    SitePipeline,
    jpeg_quantization_tables,
    parse_site_spec,
    site_pipeline_from_options,
    site_pipeline_from_spec,
)
from grasp_guard.errors import ConfigError

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]
PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:0": 2}


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


def _face_crop(h: int = 64, w: int = 64) -> np.ndarray:
    """A crop of the astronaut's face (uint8 HWC)."""
    return np.array(data.astronaut()[40 : 40 + h, 170 : 170 + w])


def _to_tensor(array: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].to(dtype) / 255.0


def _pillow_round_trip(array: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(array).save(
        buf, "JPEG", quality=quality, subsampling=PIL_SUBSAMPLING[subsampling]
    )
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.array(im.convert("RGB"))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (a.double() - b.double()).square().mean()))


def _checkerboard(h: int = 32, w: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    board = ((yy + xx) % 2).double()
    return board.expand(1, 3, h, w).clone()


def _ac_energy(x: torch.Tensor) -> float:
    return float((x - x.mean(dim=(-2, -1), keepdim=True)).square().sum())


# --- quantisation tables -------------------------------------------------------------------


@pytest.mark.parametrize("quality", [1, 10, 25, 49, 50, 51, 75, 85, 95, 100])
def test_quantization_tables_match_pillow(quality: int) -> None:
    buf = io.BytesIO()
    Image.fromarray(_face_crop(16, 16)).save(buf, "JPEG", quality=quality, subsampling=2)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        # Pillow reports the tables in natural (row-major) order, not zigzag.
        pillow = torch.tensor([list(im.quantization[i]) for i in (0, 1)]).reshape(2, 8, 8)
    assert torch.equal(jpeg_quantization_tables(quality), pillow)


def test_quantization_tables_closed_forms() -> None:
    assert jpeg_quantization_tables(50)[0, 0, :3].tolist() == [16, 11, 10]  # the base tables
    assert torch.all(jpeg_quantization_tables(100) == 1)
    assert int(jpeg_quantization_tables(1).max()) == 255  # clamped for baseline


@pytest.mark.parametrize("quality", [0, 101, 80.0, True])
def test_quantization_tables_reject_bad_quality(quality: object) -> None:
    with pytest.raises(ValueError, match="quality"):
        jpeg_quantization_tables(quality)  # type: ignore[arg-type]


# --- DiffJPEG ------------------------------------------------------------------------------


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
@pytest.mark.parametrize("quality", [50, 75, 85, 95])
@pytest.mark.parametrize("size", [(64, 64), (37, 53)])
def test_jpeg_matches_pillow(quality: int, subsampling: str, size: tuple[int, int]) -> None:
    # Measured on this crop with libjpeg-turbo 3.2 (Pillow 13): 46.7..52.3 dB between the two,
    # and the two distortions w.r.t. the input within 0.1 dB of each other.
    crop = _face_crop(*size)
    x = _to_tensor(crop)
    ours = DiffJPEG(quality, subsampling)(x)
    real = _to_tensor(_pillow_round_trip(crop, quality, subsampling))
    assert _psnr(ours, real) > 43.0
    assert abs(_psnr(ours, x) - _psnr(real, x)) < 0.5


@pytest.mark.parametrize(("quality", "floor"), [(75, 36.0), (95, 43.0)])
def test_jpeg_chroma_resampling_matches_pillow(quality: int, floor: float) -> None:
    # Random colour patches with edges off the 2x2 chroma grid: the decoder's triangular
    # upsampling matters here (measured 39.6 / 47.5 dB; nearest-neighbour upsampling: 23 dB).
    rng = np.random.default_rng(0)
    patches = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((5, 5, 1))).astype(np.uint8)
    ours = DiffJPEG(quality, "4:2:0")(_to_tensor(patches))
    real = _to_tensor(_pillow_round_trip(patches, quality, "4:2:0"))
    assert _psnr(ours, real) > floor


def test_jpeg_higher_quality_is_closer_to_input() -> None:
    x = _to_tensor(_face_crop())
    psnrs = [_psnr(DiffJPEG(q)(x), x) for q in (10, 30, 50, 75, 95)]
    assert psnrs == sorted(psnrs)
    assert psnrs[-1] - psnrs[0] > 10.0


def test_jpeg_subsampling_loses_chroma_detail() -> None:
    x = _to_tensor(_face_crop())
    assert _psnr(DiffJPEG(95, "4:2:0")(x), x) < _psnr(DiffJPEG(95, "4:4:4")(x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
def test_jpeg_gradient_flows(
    dtype: torch.dtype, subsampling: str, device: torch.device
) -> None:
    x = _to_tensor(_face_crop(24, 40), dtype).to(device).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    out = DiffJPEG(80, subsampling).to(device)(x)
    assert out.dtype == dtype and out.device == x.device
    (out * weights.to(device)).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_jpeg_quality_range_is_seeded() -> None:
    a, b = DiffJPEG((75, 85), seed=7), DiffJPEG((75, 85), seed=7)
    seq_a = [a.sample_quality() for _ in range(30)]
    assert seq_a == [b.sample_quality() for _ in range(30)]
    assert set(seq_a) <= set(range(75, 86)) and len(set(seq_a)) > 3
    x = _to_tensor(_face_crop(16, 16))
    c, d = DiffJPEG((40, 90), seed=1), DiffJPEG((40, 90), seed=1)
    assert all(torch.equal(c(x), d(x)) for _ in range(3))


def test_jpeg_random_grid_is_seeded_and_matters() -> None:
    x = _to_tensor(_face_crop(40, 40))
    outs = [DiffJPEG(75, random_grid=True, seed=s)(x) for s in (0, 0, 1, 2)]
    assert torch.equal(outs[0], outs[1])
    assert not all(torch.equal(outs[0], o) for o in outs[2:])
    assert all(_psnr(o, x) > 28.0 for o in outs)


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
@pytest.mark.parametrize("offset", [(3, 0), (5, 11), (16, 24)])
def test_jpeg_on_the_crops_grid_matches_the_real_encode_of_its_image(
    subsampling: str, offset: tuple[int, int]
) -> None:
    # A crop cut at (y, x) from an image encoded whole sits on the image's block grid; given
    # that phase the simulation quantises the same blocks, at any other it does not.
    image = np.array(data.astronaut()[:160, 120:280])
    y, x = offset
    crop = image[y : y + 96, x : x + 96]
    real = _to_tensor(_pillow_round_trip(image, 80, subsampling)[y : y + 96, x : x + 96])
    jpeg = DiffJPEG(80, subsampling)

    def error(phase: tuple[int, int]) -> float:
        out = jpeg(_to_tensor(crop), grid=torch.tensor([[*phase, 0]]))
        return _psnr(out[..., 8:-8, 8:-8], real[..., 8:-8, 8:-8])  # away from the cut's edges

    right = error((y % 16, x % 16))
    assert right > 45.0
    assert right > max(error(((y + d) % 16, (x + d) % 16)) for d in (2, 4, 7)) + 3.0


def test_jpeg_grid_is_per_sample_and_negative_means_drawn() -> None:
    crops = _to_tensor(_face_crop(40, 40)).expand(3, -1, -1, -1)
    grid = torch.tensor([[0, 0, 0], [5, 9, 0], [-1, -1, 0]])
    out = DiffJPEG(75, random_grid=True, seed=3)(crops, grid=grid)
    assert torch.equal(out[0], DiffJPEG(75)(crops[:1])[0])
    assert torch.equal(out[1:2], DiffJPEG(75)(crops[:1], grid=torch.tensor([[5, 9, 0]])))
    assert torch.equal(out[2], DiffJPEG(75, random_grid=True, seed=3)(crops[:1])[0])
    with pytest.raises(ValueError, match="grid must be"):
        DiffJPEG(75)(crops, grid=torch.zeros(3, 2, dtype=torch.long))


def test_jpeg_of_transposed_storage_is_the_transpose_of_the_stored_round_trip() -> None:
    crop = _to_tensor(_face_crop(48, 40))
    stored = DiffJPEG(70)(crop.transpose(-1, -2), grid=torch.tensor([[2, 7, 0]]))
    seen = DiffJPEG(70)(crop, grid=torch.tensor([[7, 2, 1]]))
    torch.testing.assert_close(seen, stored.transpose(-1, -2))
    assert not torch.equal(seen, DiffJPEG(70)(crop, grid=torch.tensor([[7, 2, 0]])))


def test_a_pipeline_hands_the_grid_to_its_jpeg_step() -> None:
    x = _to_tensor(_face_crop(40, 40))
    grid = torch.tensor([[4, 12, 0]])
    pipeline = site_pipeline_from_spec({"jpeg_quality": 70, "blur_sigma": 0.0})
    assert torch.equal(pipeline(x, grid=grid), DiffJPEG(70)(x, grid=grid))


# --- Resize and blur -----------------------------------------------------------------------


def test_resize_half_removes_checkerboard_energy() -> None:
    board = _checkerboard()
    out = Resize(scale=0.5)(board)
    assert out.shape == board.shape
    assert _ac_energy(out) < 0.05 * _ac_energy(board)
    smooth = torch.linspace(0, 1, 32, dtype=torch.float64).expand(1, 3, 32, 32)
    assert _psnr(Resize(scale=0.5)(smooth), smooth) > 35.0


def test_resize_max_side() -> None:
    x = _to_tensor(_face_crop(48, 64))
    assert torch.equal(Resize(max_side=32)(x), Resize(scale=0.5)(x))
    assert torch.equal(Resize(max_side=64)(x), x)  # never enlarges


def test_resize_scale_range_is_seeded() -> None:
    x = _to_tensor(_face_crop(32, 32))
    a, b = Resize(scale=(0.3, 0.9), seed=5), Resize(scale=(0.3, 0.9), seed=5)
    outs_a = [a(x) for _ in range(4)]
    assert all(torch.equal(o, b(x)) for o in outs_a)
    assert not torch.equal(outs_a[0], outs_a[1])


def test_blur_removes_checkerboard_energy_and_zero_sigma_is_identity() -> None:
    board = _checkerboard(16, 16)
    assert _ac_energy(GaussianBlur(1.0)(board)) < 0.05 * _ac_energy(board)
    assert torch.equal(GaussianBlur(0.0)(board), board)
    flat = torch.full((1, 3, 9, 9), 0.3, dtype=torch.float64)
    torch.testing.assert_close(GaussianBlur((0.3, 0.8))(flat), flat)


@pytest.mark.parametrize(
    "transform", [Resize(scale=0.5), Resize(scale=0.7), GaussianBlur(0.6)], ids=repr
)
def test_smooth_transforms_gradcheck(transform: torch.nn.Module) -> None:
    # Interior values so the final clamp is inactive.
    x = (0.25 + 0.5 * torch.rand(1, 3, 5, 6, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(transform, (x,))


# --- shapes, dtypes, devices ---------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        Identity(),
        DiffJPEG(80),
        DiffJPEG((75, 85), "4:4:4", random_grid=True),
        Resize(scale=0.5),
        Resize(max_side=20),
        GaussianBlur((0.0, 0.5)),
        site_pipeline_from_spec(
            {"jpeg_quality": [75, 85], "max_side": 1080, "blur_sigma": [0, 0.5]},
            image_long_side=2000,
        ),
    ],
    ids=lambda t: type(t).__name__,
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_odd_sizes_dtypes_devices(
    transform: torch.nn.Module, dtype: torch.dtype, device: torch.device
) -> None:
    x = torch.rand(2, 3, 37, 53, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = transform.to(device)(x.to(device))
    assert out.shape == x.shape and out.dtype == dtype and out.device.type == device.type
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@pytest.mark.parametrize("transform", [DiffJPEG(80), Resize(scale=0.5), GaussianBlur(0.5)])
def test_rejects_non_image_batches(transform: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        transform(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="floating"):
        transform(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: DiffJPEG(0), "quality"),
        (lambda: DiffJPEG((90, 80)), "quality"),
        (lambda: DiffJPEG(80, "4:2:2"), "subsampling"),  # type: ignore[arg-type]
        (lambda: Resize(), "exactly one"),
        (lambda: Resize(max_side=100, scale=0.5), "exactly one"),
        (lambda: Resize(scale=1.5), "scale"),
        (lambda: Resize(scale=(0.8, 0.2)), "scale"),
        (lambda: GaussianBlur(-1.0), "sigma"),
    ],
)
def test_constructor_validation(factory: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()  # type: ignore[operator]


# --- pipelines and specs -------------------------------------------------------------------


def test_pipeline_composes_in_order_and_accepts_callables() -> None:
    x = torch.full((1, 3, 4, 4), 0.5)
    pipeline = SitePipeline([lambda t: t * 2, Identity(), lambda t: t - 0.25])
    torch.testing.assert_close(pipeline(x), x * 2 - 0.25)
    assert torch.equal(SitePipeline([])(x), x)


@pytest.mark.parametrize(
    ("spec", "long_side", "types"),
    [
        ({}, None, []),
        ({"jpeg_quality": 80}, None, [DiffJPEG]),
        ({"jpeg_quality": [75, 85], "subsampling": "4:4:4"}, None, [DiffJPEG]),
        ({"max_side": 1080, "jpeg_quality": 80}, 2160, [Resize, DiffJPEG]),
        ({"max_side": 1080, "jpeg_quality": 80}, 1080, [DiffJPEG]),  # no resize when not larger
        ({"blur_sigma": [0, 0.5], "max_side": 2048}, 4096, [Resize, GaussianBlur]),
        ({"blur_sigma": 0}, None, []),
        ({"jpeg_quality": None, "max_side": None}, None, []),
    ],
)
def test_spec_builds_expected_steps(
    spec: dict[str, object], long_side: int | None, types: list[type]
) -> None:
    pipeline = site_pipeline_from_spec(spec, image_long_side=long_side)
    assert [type(s) for s in pipeline.steps] == types


def test_spec_values_reach_the_steps() -> None:
    pipeline = site_pipeline_from_spec(
        {"jpeg_quality": [75, 85], "max_side": 1080, "blur_sigma": [0.1, 0.5],
         "subsampling": "4:4:4"},
        image_long_side=4320,
    )
    resize, blur, jpeg = pipeline.steps
    assert resize.scale_range == (0.25, 0.25)
    assert blur.sigma_range == (0.1, 0.5)
    assert jpeg.quality_range == (75, 85) and jpeg.subsampling == "4:4:4" and jpeg.random_grid
    spec = parse_site_spec({"jpeg_quality": 80})
    assert spec.jpeg_quality == (80, 80) and spec.subsampling == "4:2:0"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"jpeg_quality": [85, 75]}, "jpeg_quality"),
        ({"jpeg_quality": [75, 80, 85]}, "jpeg_quality"),
        ({"jpeg_quality": "80"}, "jpeg_quality"),
        ({"jpeg_quality": 80.5}, "jpeg_quality"),
        ({"max_side": 8}, "max_side"),
        ({"max_side": True}, "max_side"),
        ({"blur_sigma": -0.5}, "blur_sigma"),
        ({"blur_sigma": [0.5, 0.1]}, "blur_sigma"),
        ({"blur_sigma": "mild"}, "blur_sigma"),
        ({"subsampling": "4:2:2"}, "subsampling"),
        ({"jpeg_qualty": 80}, "jpeg_qualty"),
    ],
)
def test_bad_spec_names_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        site_pipeline_from_spec(spec)


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        site_pipeline_from_spec([("jpeg_quality", 80)])  # type: ignore[arg-type]


def test_spec_is_seeded() -> None:
    spec = {"jpeg_quality": [60, 90], "max_side": 1080, "blur_sigma": [0, 0.5]}
    x = _to_tensor(_face_crop(24, 24))
    a = site_pipeline_from_spec(spec, image_long_side=3000, seed=11)
    b = site_pipeline_from_spec(spec, image_long_side=3000, seed=11)
    assert all(torch.equal(a(x), b(x)) for _ in range(3))


@pytest.mark.parametrize(
    ("kwargs", "scale", "quality"),
    [
        ({}, None, None),
        ({"jpeg_quality": 80}, None, (80, 80)),
        ({"max_side": 2048, "image_long_side": 4096}, 0.5, None),
        ({"max_side": 2048, "image_long_side": 1024, "jpeg_quality": 85}, None, (85, 85)),
        ({"max_side": 1080, "image_long_side": 1350, "jpeg_quality": 75}, 0.8, (75, 75)),
    ],
)
def test_pipeline_from_options(
    kwargs: dict[str, int], scale: float | None, quality: tuple[int, int] | None
) -> None:
    steps = list(site_pipeline_from_options(**kwargs).steps)
    resizes = [s for s in steps if isinstance(s, Resize)]
    jpegs = [s for s in steps if isinstance(s, DiffJPEG)]
    assert [r.scale_range for r in resizes] == ([] if scale is None else [(scale, scale)])
    assert [j.quality_range for j in jpegs] == ([] if quality is None else [quality])
    assert all(j.subsampling == "4:2:0" for j in jpegs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_side": 1080}, "image_long_side"),
        ({"max_side": 1080, "image_long_side": 0}, "image_long_side"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"max_side": 4, "image_long_side": 100}, "max_side"),
    ],
)
def test_pipeline_from_options_errors(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        site_pipeline_from_options(**kwargs)


@pytest.mark.parametrize("quality", [30, 75, 85, 92, 100])
def test_estimated_quality_of_a_pillow_jpeg(quality: int) -> None:
    from grasp_guard.defense.transforms import estimate_jpeg_quality

    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG", quality=quality)
    assert estimate_jpeg_quality(Image.open(buf).quantization[0]) == quality
